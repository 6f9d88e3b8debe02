"""`taskplane schedules …`: a tenant's schedules from a terminal or a script.

    taskplane schedules create TYPE (--cron EXPR | --every DURATION) [--input JSON] [--id ID]
                               [--timezone TZ] [--overlap POLICY] [--catchup-window DURATION]
                               [--jitter DURATION] [--paused]
                               [--concurrency-key KEY] [--priority 1-5]
    taskplane schedules list
    taskplane schedules get|pause|resume|trigger|delete ID
    taskplane schedules backfill ID --start TIME --end TIME

DURATION is seconds, or a number with s, m, h or d (`90s`, `5m`, `1h`); TIME is ISO 8601
with a UTC offset. `--api`, `--key` and `--json` as for `taskplane tasks`; the exit codes
too (0 ok, 2 invalid, 4 no such schedule, 5 an `--id` taken by another request, 6 other).
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable
from typing import Any, TextIO

from cli.api_client import TaskApi
from cli.api_commands import run_api_command
from cli.exit_codes import EXIT_OK
from cli.values import parse_json_object, write_json
from settings import Settings

log = logging.getLogger(__name__)

Command = Callable[[TaskApi, argparse.Namespace, TextIO], int]
OVERLAPS = ("skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"^(\d+)([smhd]?)$")


def parse_duration(raw: str) -> int:
    """Seconds from `90`, `90s`, `5m`, `2h` or `1d`."""
    match = _DURATION.match(raw.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{raw!r} is no duration (e.g. 30s, 5m, 1h, 1d)")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def _show(schedule: dict[str, Any], out: TextIO) -> None:
    when = f"cron {schedule['cron']!r}" if schedule.get("cron") else f"every {schedule['every']} s"
    if schedule.get("timezone"):
        when += f" ({schedule['timezone']})"
    out.write(
        f"schedule {schedule['id']}: {schedule['type']} {when}, overlap {schedule['overlap']}"
    )
    if "paused" in schedule:
        out.write(", paused" if schedule["paused"] else ", active")
    out.write("\n")
    for run in schedule.get("recent_runs") or []:
        out.write(f"  ran {run['scheduled_at']}  task {run['task_id']}\n")
    for due in (schedule.get("next_runs") or [])[:3]:
        out.write(f"  next {due}\n")


def _answer(out: TextIO, args: argparse.Namespace, schedule: dict[str, Any]) -> int:
    if args.json:
        write_json(out, schedule)
    else:
        _show(schedule, out)
    return EXIT_OK


def cmd_create(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {
        "type": args.type,
        "input": parse_json_object(args.input),
        "overlap": args.overlap,
        "paused": args.paused,
    }
    optional = {
        "id": args.id,
        "cron": args.cron,
        "every": args.every,
        "timezone": args.timezone,
        "catchup_window": args.catchup_window,
        "jitter": args.jitter,
        "concurrency_key": args.concurrency_key,
        "priority": args.priority,
    }
    body |= {name: value for name, value in optional.items() if value is not None}
    return _answer(out, args, api.call("POST", "/schedules", json=body))


def cmd_list(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    page = api.call("GET", "/schedules", params={"limit": 500})
    if args.json:
        write_json(out, page)
        return EXIT_OK
    for schedule in page["schedules"]:
        _show(schedule, out)
    return EXIT_OK


def _on_schedule(method: str, action: str | None) -> Command:
    def command(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
        path = f"/schedules/{args.schedule_id}" + (f"/{action}" if action else "")
        answer = api.call(method, path)
        if answer is None:  # delete
            if not args.json:
                out.write(f"schedule {args.schedule_id} deleted\n")
            return EXIT_OK
        return _answer(out, args, answer)

    return command


def cmd_backfill(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    body = {"start_at": args.start, "end_at": args.end}
    return _answer(
        out, args, api.call("POST", f"/schedules/{args.schedule_id}/backfill", json=body)
    )


def register(commands: Any) -> None:
    """Add `schedules` and its subcommands to the `taskplane` parser (cli/main.py)."""
    schedules = commands.add_parser(
        "schedules",
        help="create, list, pause, resume, trigger, backfill and delete schedules",
        description=__doc__.split("\n")[0],
    )
    schedules.set_defaults(handler=run)
    sub = schedules.add_subparsers(dest="schedule_command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", metavar="URL", help="the API (default: TASKPLANE_API_URL)")
    common.add_argument("--key", help="an API key (default: TASKPLANE_API_KEY)")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    def add(name: str, command: Command, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text, parents=[common]
        )
        parser.set_defaults(schedule_handler=command)
        return parser

    create = add("create", cmd_create, "a schedule that starts a task of TYPE on each fire")
    create.add_argument("type", metavar="TYPE")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="e.g. '0 3 * * *'")
    when.add_argument("--every", type=parse_duration, metavar="DURATION", help="e.g. 30s, 5m")
    create.add_argument("--input", default="{}", metavar="JSON", help="JSON, or @file.json")
    create.add_argument("--id", help="your id for it (a repeat with the same id is safe)")
    create.add_argument("--timezone", metavar="TZ", help="IANA zone for --cron (default UTC)")
    create.add_argument("--overlap", choices=OVERLAPS, default="skip")
    create.add_argument("--catchup-window", type=parse_duration, metavar="DURATION")
    create.add_argument("--jitter", type=parse_duration, metavar="DURATION")
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument("--concurrency-key", metavar="KEY", help="each task's concurrency key")
    create.add_argument("--priority", type=int, choices=range(1, 6), help="1 first, 5 last")
    add("list", cmd_list, "the tenant's schedules")
    for name, method, action, help_text in (
        ("get", "GET", None, "a schedule, its next fires and recent runs"),
        ("pause", "POST", "pause", "no fires until resumed"),
        ("resume", "POST", "resume", "fire again"),
        ("trigger", "POST", "trigger", "fire once now"),
        ("delete", "DELETE", None, "delete it (its tasks stay)"),
    ):
        add(name, _on_schedule(method, action), help_text).add_argument("schedule_id", metavar="ID")
    backfill = add("backfill", cmd_backfill, "run the fires of a past time range")
    backfill.add_argument("schedule_id", metavar="ID")
    backfill.add_argument("--start", required=True, metavar="TIME", help="ISO 8601, with offset")
    backfill.add_argument("--end", required=True, metavar="TIME", help="ISO 8601, with offset")


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the chosen `schedules` subcommand; failures become the documented exit codes."""
    command: Command = args.schedule_handler
    return run_api_command(settings, args, command, out)
