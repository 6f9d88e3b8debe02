"""The dev server's command line: what `taskplane up`, the tests and the bench run."""

from __future__ import annotations

from pathlib import Path

from devstack.temporal import TemporalDevServer


def _dynamic_config(tmp_path: Path) -> list[str]:
    argv = TemporalDevServer(tmp_path, port=7233, ui_port=None).command()
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--dynamic-config-value"]


def test_fairness_is_on_in_one_partition(tmp_path: Path) -> None:
    values = _dynamic_config(tmp_path)
    for setting in (
        "matching.useNewMatcher=true",
        "matching.enableFairness=true",
        "matching.numTaskqueueReadPartitions=1",
        "matching.numTaskqueueWritePartitions=1",
    ):
        assert setting in values


def test_the_transfer_queue_is_read_often_enough_for_first_steps(tmp_path: Path) -> None:
    # The default, 20 reads a second on the dev server's one shard, held a new run's
    # first workflow task up to 50 ms (more when starts came in a burst).
    assert "history.transferProcessorMaxPollRPS=200" in _dynamic_config(tmp_path)
