"""Leave a process that used the Temporal SDK without interpreter finalisation.

The SDK's Rust bridge keeps threads that can touch the GIL while CPython
finalises, which aborts the process (`PyGILState_Release … must be current`,
exit 134) after an otherwise clean shutdown: temporalio/sdk-python#300, seen
here in about one worker stop in four. Everything we own is closed and flushed
by the time this runs, so skipping finalisation loses nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def exit_now(code: int = 0) -> NoReturn:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
