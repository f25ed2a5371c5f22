"""Replay a dead-letter topic to the topics its messages came from: ``python -m contracts.runtime.redrive``.

    python -m contracts.runtime.redrive imports.v1.dlq                       # everything
    python -m contracts.runtime.redrive imports.v1.dlq --older-than 3600     # dead for an hour or more
    python -m contracts.runtime.redrive connections.v1.dlq --header x-dlq-error-type=SourceError
    python -m contracts.runtime.redrive imports.v1.dlq --for-group notifier-imports  # one group's letters
    python -m contracts.runtime.redrive imports.v1.dlq --dry-run             # say what would go

Each message goes back to its ``x-dlq-original-topic`` with its key and its own headers (the
``x-dlq-*`` ones dropped, so a new failure is described afresh), plus ``x-redrive-for-group`` naming
the consumer group it failed in (its ``x-dlq-consumer-group``): the other groups reading that topic
acknowledge it without handling it, so a replay feeds only its owner. (A letter without
``x-dlq-consumer-group``, from before it was written, goes to every group.) ``--for-group`` replays
only the letters of one group. The command reads the topic as consumer group ``--group``
(``dlq-redrive`` by default, ``dlq-redrive-<group>`` with ``--for-group``, so that each owner's letters
keep their own progress) up to where it ended when the command started, and commits
each message once it is replayed or passed over: a rerun continues where the last one stopped and
replays nothing twice. A message passed over by a ``--header`` filter is not looked at again by that
group (use another ``--group`` to go over the topic again); with ``--older-than`` the run stops at a
partition's first message too young, which a later run picks up. The broker comes from the services'
environment (``KAFKA_BOOTSTRAP_SERVERS`` and the security variables).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from contracts import topics
from contracts.runtime.dead_letter import (
    HEADER_CONSUMER_GROUP,
    HEADER_FAILED_AT,
    HEADER_ORIGINAL_TOPIC,
    HEADER_PREFIX,
    HEADER_REDRIVE_FOR_GROUP,
)
from contracts.runtime.kafka import client_security
from contracts.runtime.settings import CommonSettings

DEFAULT_GROUP = "dlq-redrive"
FETCH_TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters to replay: all, those dead for at least ``older_than``, those with headers,
    those of one consumer group (``for_group``: their ``x-dlq-consumer-group``)."""

    older_than: timedelta | None = None
    headers: dict[str, str] = field(default_factory=dict)
    for_group: str | None = None

    def progress_group(self) -> str:
        """The redrive's own consumer group when none is given: one per owner with ``for_group``."""
        return DEFAULT_GROUP if self.for_group is None else f"{DEFAULT_GROUP}-{self.for_group}"

    def wants(self, headers: dict[str, str]) -> bool:
        wanted = dict(self.headers)
        if self.for_group is not None:
            wanted[HEADER_CONSUMER_GROUP] = self.for_group
        return all(headers.get(name) == value for name, value in wanted.items())


@dataclass(slots=True)
class Report:
    replayed: int = 0
    passed_over: int = 0
    left_for_later: int = 0


def _headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {name: value.decode(errors="replace") for name, value in record.headers or ()}


def _replay_headers(record: ConsumerRecord[bytes, bytes], headers: dict[str, str]) -> list[tuple[str, bytes]]:
    """The letter's own headers, without the ``x-dlq-*`` ones, and the group the replay is for."""
    kept = [
        (name, value)
        for name, value in record.headers or ()
        if not name.startswith(HEADER_PREFIX) and name != HEADER_REDRIVE_FOR_GROUP
    ]
    owner = headers.get(HEADER_CONSUMER_GROUP)
    return kept if owner is None else [*kept, (HEADER_REDRIVE_FOR_GROUP, owner.encode())]


def _failed_at(record: ConsumerRecord[bytes, bytes], headers: dict[str, str]) -> datetime:
    try:
        return datetime.fromisoformat(headers[HEADER_FAILED_AT])
    except (KeyError, ValueError):
        return datetime.fromtimestamp(record.timestamp / 1000, UTC)


async def redrive(
    settings: CommonSettings,
    dead_letter_topic: str,
    *,
    selection: Selection | None = None,
    group: str | None = None,
    dry_run: bool = False,
) -> Report:
    """Replay ``dead_letter_topic`` up to its current end (see the module's documentation)."""
    selection = selection or Selection()
    group = group or selection.progress_group()
    if not dead_letter_topic.endswith(topics.DEAD_LETTER_SUFFIX):
        raise ValueError(f"{dead_letter_topic} is not a dead-letter topic")
    default_topic = dead_letter_topic.removesuffix(topics.DEAD_LETTER_SUFFIX)
    security = client_security(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **security,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True, acks="all", **security
    )
    report = Report()
    await consumer.start()
    await producer.start()
    try:
        numbers = sorted(await producer.partitions_for(dead_letter_topic))
        partitions = [TopicPartition(dead_letter_topic, number) for number in numbers]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        cutoff = None if selection.older_than is None else datetime.now(UTC) - selection.older_than
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=FETCH_TIMEOUT_MS)
            for tp, records in batches.items():
                for record in records:
                    if tp not in pending:
                        break
                    headers = _headers(record)
                    if cutoff is not None and _failed_at(record, headers) > cutoff:
                        report.left_for_later += 1
                        pending.discard(tp)  # this partition's later letters are younger still
                        break
                    if selection.wants(headers):
                        if not dry_run:
                            await producer.send_and_wait(
                                headers.get(HEADER_ORIGINAL_TOPIC, default_topic),
                                record.value,
                                key=record.key,
                                headers=_replay_headers(record, headers),
                            )
                        report.replayed += 1
                    else:
                        report.passed_over += 1
                    if not dry_run:
                        await consumer.commit({tp: record.offset + 1})
                    if record.offset + 1 >= ends[tp]:
                        pending.discard(tp)
    finally:
        await producer.stop()
        await consumer.stop()
    return report


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.runtime.redrive",
        description="Replay a dead-letter topic to its original topic.",
    )
    parser.add_argument("topic", help="the dead-letter topic, e.g. imports.v1.dlq")
    parser.add_argument(
        "--older-than", type=float, metavar="SECONDS", help="only letters dead this long or more"
    )
    parser.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="only letters with it",
    )
    parser.add_argument(
        "--for-group",
        metavar="GROUP",
        help="only the letters of this consumer group (their x-dlq-consumer-group)",
    )
    parser.add_argument(
        "--group",
        help=f"the progress's consumer group ({DEFAULT_GROUP}; {DEFAULT_GROUP}-GROUP with --for-group)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would be replayed; change nothing")
    args = parser.parse_args(argv)
    selection = Selection(
        older_than=None if args.older_than is None else timedelta(seconds=args.older_than),
        headers=dict(args.header),
        for_group=args.for_group,
    )
    report = asyncio.run(
        redrive(CommonSettings(), args.topic, selection=selection, group=args.group, dry_run=args.dry_run)
    )
    print(json.dumps({"topic": args.topic, "dry_run": args.dry_run, **asdict(report)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
