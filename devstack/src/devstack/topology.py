"""The topics the stack runs on: the public ones of the SPEC, the internal ones, dead letters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from contracts import topics
from contracts.sync import CONNECTION_REPORTS_TOPIC, SYNC_EVENTS_TOPIC

#: The importer's internal work queue: one message per page to fetch (not part of the public contract).
PAGE_REQUESTS: Final = "importer.page-requests.v1"
PAGE_REQUESTS_PARTITIONS: Final = 12
#: The importer's sync work: processor events from webhooks and the scheduler's ticks, by processor account.
SYNC_EVENTS: Final = SYNC_EVENTS_TOPIC
SYNC_EVENTS_PARTITIONS: Final = 12
#: The importer's reports of dead credentials, for the connector (internal), by account.
CONNECTION_REPORTS: Final = CONNECTION_REPORTS_TOPIC
DEFAULT_PARTITIONS: Final = 6

#: Topics some service consumes; each gets a ``<topic>.dlq``.
CONSUMED_TOPICS: Final = (
    topics.ONBOARDING_REQUESTS,
    topics.CONNECTIONS,
    topics.IMPORTS,
    PAGE_REQUESTS,
    SYNC_EVENTS,
    CONNECTION_REPORTS,
)

_COMPACTED: Final = {"cleanup.policy": "compact"}
_ERROR_NONE = 0
_ERROR_TOPIC_ALREADY_EXISTS = 36
PROVISION_TIMEOUT_S: Final = 60.0
_RETRY_INTERVAL_S: Final = 0.25


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = DEFAULT_PARTITIONS
    config: Mapping[str, str] = field(default_factory=dict)


def stack_topics() -> tuple[TopicSpec, ...]:
    """Every topic the services use, with its partition count and config."""
    public = tuple(
        TopicSpec(name, config=_COMPACTED if name in topics.BILLING_TOPICS else {})
        for name in topics.PUBLIC_TOPICS
    )
    internal = (
        TopicSpec(PAGE_REQUESTS, partitions=PAGE_REQUESTS_PARTITIONS),
        TopicSpec(SYNC_EVENTS, partitions=SYNC_EVENTS_PARTITIONS),
        TopicSpec(CONNECTION_REPORTS),
    )
    dead_letters = tuple(TopicSpec(topics.dead_letter_topic(name)) for name in CONSUMED_TOPICS)
    return public + internal + dead_letters


async def provision_topics(
    bootstrap_servers: str,
    specs: Sequence[TopicSpec] | None = None,
    *,
    replication_factor: int = 1,
    timeout_s: float = PROVISION_TIMEOUT_S,
) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are).

    Retries until the broker accepts, so it doubles as the readiness check of a starting broker.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped, unused-ignore]

    wanted = list(stack_topics() if specs is None else specs)
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [spec for spec in wanted if spec.name not in existing]
            if not missing:
                return
            response = await admin.create_topics(
                [
                    NewTopic(spec.name, spec.partitions, replication_factor, topic_configs=dict(spec.config))
                    for spec in missing
                ]
            )
            failures = [
                f"{name}: {code} {message}"
                for name, code, message, *_ in response.topic_errors
                if code not in (_ERROR_NONE, _ERROR_TOPIC_ALREADY_EXISTS)
            ]
            if not failures:
                return
            last_error = "; ".join(failures)
        except Exception as error:
            last_error = repr(error)
        finally:
            await admin.close()
        await asyncio.sleep(_RETRY_INTERVAL_S)
    raise TimeoutError(
        f"could not create the topics on {bootstrap_servers} in {timeout_s:.0f} s: {last_error}"
    )


def ensure_topics(
    bootstrap_servers: str,
    specs: Sequence[TopicSpec] | None = None,
    *,
    replication_factor: int = 1,
    timeout_s: float = PROVISION_TIMEOUT_S,
) -> None:
    """``provision_topics`` for synchronous callers, even those inside a running event loop."""

    def provision() -> None:
        asyncio.run(
            provision_topics(
                bootstrap_servers, specs, replication_factor=replication_factor, timeout_s=timeout_s
            )
        )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        provision()
        return
    # A loop runs in this thread (an async test calling sync code): provision on a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(provision).result()
