"""The shared `main()` of the bench entry points that start their own servers.

Each of them runs, writes its JSON, prints its figures and leaves through
`telemetry.exit.exit_now`: the Temporal SDK's threads can abort interpreter
finalisation, and a failure must still say why (the servers are stopped by then).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

Report = dict[str, Any]


def run_bench(
    run: Callable[[], Report],
    out_for: Callable[[Report], Path],
    show: Callable[[Report, Path], None],
) -> NoReturn:
    """Run one bench, write its report to `out_for(report)`, then `show` it."""
    from telemetry import configure_logging
    from telemetry.exit import exit_now

    configure_logging("WARNING")
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    try:
        report = run()
    except KeyboardInterrupt:
        exit_now(130)
    except Exception:
        traceback.print_exc()
        exit_now(1)
    out = out_for(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    show(report, out)
    exit_now(0)
