"""Running one API subcommand (`tasks …`, `schedules …`) the same way: its client built
from the flags or the settings, closed after, and failures turned into exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TextIO

from cli.api_client import ApiError, TaskApi
from cli.exit_codes import EXIT_USAGE
from cli.values import UsageError
from settings import Settings

log = logging.getLogger(__name__)

ApiCommand = Callable[[TaskApi, argparse.Namespace, TextIO], int]


def run_api_command(
    settings: Settings, args: argparse.Namespace, command: ApiCommand, out: TextIO | None
) -> int:
    """Run `command`; a usage error is EXIT_USAGE, an API error its documented code."""
    key = args.key or (settings.api_key.get_secret_value() if settings.api_key else None)
    api = TaskApi(args.api or settings.api_url, key)
    try:
        return command(api, args, out or sys.stdout)
    except UsageError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except ApiError as exc:
        log.error("%s", exc.detail)
        return exc.exit_code
    finally:
        api.close()
