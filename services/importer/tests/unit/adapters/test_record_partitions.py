"""The bulk publisher picks each record's partition itself: the one every Kafka producer's default
partitioner picks for the key, so a record and its later tombstone share a partition."""

from __future__ import annotations

import asyncio
import random

import pytest
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from contracts import topics
from importer.adapters.kafka_publisher import all_delivered, key_partition, murmur2


def test_murmur2_is_kafkas_for_keys_of_every_length() -> None:
    rng = random.Random(7)
    for length in range(80):
        for _ in range(50):
            key = rng.randbytes(length)
            assert murmur2(key) == aiokafka_murmur2(key), key


def test_murmur2_is_kafkas_for_keys_sharing_their_start_at_every_length() -> None:
    # The state after a key's first words is remembered per start and length: keys that share
    # them (one account's records) and keys that share the start only must all hash as Kafka's.
    rng = random.Random(11)
    start = b"acct_1:stripe:sub_"
    for _ in range(3):
        for length in range(len(start), 60):
            key = start + rng.randbytes(length - len(start))
            assert murmur2(key) == aiokafka_murmur2(key), key


@pytest.mark.parametrize("partition_count", [1, 3, 12, 16])
def test_a_record_key_lands_where_the_default_partitioner_puts_it(partition_count: int) -> None:
    partitions = list(range(partition_count))
    default = DefaultPartitioner()
    for index in range(500):
        key = topics.billing_record_key(f"acct_{index % 7}", "stripe", f"sub_{index:08d}").encode()
        assert key_partition(key, partitions) == default(key, partitions, partitions)


async def test_a_failed_send_is_raised_once_every_send_before_it_is_delivered() -> None:
    loop = asyncio.get_running_loop()
    delivered, failed, later = loop.create_future(), loop.create_future(), loop.create_future()
    delivered.set_result(None)
    failed.set_exception(KafkaError("broker gone"))

    with pytest.raises(KafkaError, match="broker gone"):
        await all_delivered([delivered, failed, later])

    later.set_exception(KafkaError("also gone"))  # read by then: never reported as unretrieved
    await asyncio.sleep(0)
    await all_delivered([delivered])  # all delivered: returns
