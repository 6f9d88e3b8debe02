"""Stream id arithmetic behind trim gaps (`broker.protocol`): ids sort as (millis, seq)."""

from __future__ import annotations

from broker.protocol import MAX_SEQUENCE, TrimGap, id_after, id_before, id_key


def test_ids_sort_by_millis_then_sequence() -> None:
    assert id_key("10-2") < id_key("10-10") < id_key("11-0")
    assert id_key("0-0") == (0, 0)


def test_the_id_before_and_after() -> None:
    assert id_before("10-3") == "10-2"
    assert id_before("10-0") == f"9-{MAX_SEQUENCE}"
    assert id_before("0-0") == "0-0"
    assert id_after("10-3") == "10-4"
    assert id_after(f"10-{MAX_SEQUENCE}") == "11-0"


def test_a_gap_of_one_entry_surrounds_it() -> None:
    gap = TrimGap.around("1700000000123-0")
    assert id_key(gap.after_id) < id_key("1700000000123-0") < id_key(gap.before_id)
    assert (gap.after_ms, gap.before_ms) == (1700000000122, 1700000000123)


def test_a_partitioned_message_id_reads_as_its_stream_id() -> None:
    # broker/cluster_streams.py: `<partition>:<stream id>`; a gone entry's gap still heals.
    assert id_key("7:1700000000123-4") == (1700000000123, 4)
    gap = TrimGap.around("7:1700000000123-0")
    assert (gap.after_ms, gap.before_ms) == (1700000000122, 1700000000123)
