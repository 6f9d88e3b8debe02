"""Fault injection for the fault tests (tests/faults/): never enabled in production.

`TASKPLANE_OUTBOX_TEST_KILL_AFTER_COMMIT=<event type>` makes the worker SIGKILL
itself right after committing the first event of that type and before
publishing it: the one window an outbox exists for, hit exactly, so a test can
show that another worker's relay publishes the event. A test hook rather than
a timed `kill` because that window lasts well under a millisecond.
"""

from __future__ import annotations

import logging
import os
import signal

from activities.recorder import AfterCommitHook
from store import AppendResult

log = logging.getLogger(__name__)


def kill_after_commit(event_type: str) -> AfterCommitHook:
    """A recorder hook that kills this process after committing an event of `event_type`."""

    def hook(committed_type: str, appended: AppendResult) -> None:
        if committed_type != event_type:
            return
        log.critical(
            "fault injection: SIGKILL after commit, before publish",
            extra={"event_type": committed_type, "sequence": appended.sequence},
        )
        logging.shutdown()  # flush the line above; nothing else runs after the signal
        os.kill(os.getpid(), signal.SIGKILL)

    return hook
