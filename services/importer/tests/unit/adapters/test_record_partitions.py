"""The bulk publisher picks each record's partition itself: the one every Kafka producer's default
partitioner picks for the key, so a record and its later tombstone share a partition."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from contracts import topics
from importer.adapters.kafka_publisher import key_partition, murmur2


def test_murmur2_is_kafkas_for_keys_of_every_length() -> None:
    rng = random.Random(7)
    for length in range(80):
        for _ in range(50):
            key = rng.randbytes(length)
            assert murmur2(key) == aiokafka_murmur2(key), key


@pytest.mark.parametrize("partition_count", [1, 3, 12, 16])
def test_a_record_key_lands_where_the_default_partitioner_puts_it(partition_count: int) -> None:
    partitions = list(range(partition_count))
    default = DefaultPartitioner()
    for index in range(500):
        key = topics.billing_record_key(f"acct_{index % 7}", "stripe", f"sub_{index:08d}").encode()
        assert key_partition(key, partitions) == default(key, partitions, partitions)
