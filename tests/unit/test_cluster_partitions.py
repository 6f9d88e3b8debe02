"""Partition streams of the cluster broker (broker/cluster_streams.py), without a server."""

from __future__ import annotations

import uuid
from collections import Counter

from broker import topic_for
from broker.cluster_streams import Partitions, partition_of_message, partition_tags
from broker.cluster_topology import SLOTS, slot_of


def test_partition_tags_sit_in_the_middle_of_equal_slot_ranges() -> None:
    for count in (1, 3, 12, 16, 64):
        slots = [slot_of(f"{{{tag}}}") for tag in partition_tags(count)]
        assert slots == [(2 * i + 1) * SLOTS // (2 * count) for i in range(count)]


def test_a_topic_always_maps_to_the_partition_holding_its_slot() -> None:
    partitions = Partitions("taskplane:events", 12)
    for _ in range(200):
        topic = topic_for(str(uuid.uuid4()))
        index = partitions.of(topic)
        assert index == partitions.of(topic)
        low, high = index * SLOTS / 12, (index + 1) * SLOTS / 12
        assert low <= slot_of(topic) < high
        assert slot_of(partitions.key(index)) == slot_of(partitions.dead_key(index))


def test_twelve_partitions_split_evenly_over_three_primaries() -> None:
    # `redis-cli --cluster create` with 3 primaries: 0-5460, 5461-10922, 10923-16383.
    ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
    partitions = Partitions("taskplane:events", 12)
    owners = Counter(
        next(n for n, (lo, hi) in enumerate(ranges) if lo <= slot_of(partitions.key(i)) <= hi)
        for i in partitions
    )
    assert owners == {0: 4, 1: 4, 2: 4}


def test_message_ids_name_their_partition() -> None:
    assert partition_of_message("11:1700000000123-0") == 11
