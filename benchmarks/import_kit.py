"""What the import benchmarks share: a connection stored as the connector leaves it once connected,
and an import triggered by its ``ProcessorConnected`` and awaited until its ``ImportCompleted``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from contracts import topics
from contracts.connections import CredentialCipher, ProcessorCredentials
from contracts.events import (
    IMPORT_EVENTS,
    ImportCompleted,
    ImportFailed,
    ImportProgressed,
    Mode,
    Processor,
    ProcessorConnected,
)
from pydantic import SecretStr

CONTACT_EMAIL = "bench@example.com"


def connected(
    db: Any,
    credentials_key: str,
    *,
    account_id: str,
    processor: Processor,
    mode: Mode,
    processor_account_id: str,
    api_key: str,
    **fields: Any,
) -> ProcessorConnected:
    """A connected connection of ``account_id`` in the connector's store (``fields`` added to it),
    and the event that starts its import."""
    connection_id = f"conn_{uuid.uuid4().hex[:10]}"
    cipher = CredentialCipher([credentials_key])
    db.connections.insert_one(
        {
            "_id": connection_id,
            "account_id": account_id,
            "processor": processor.value,
            "status": "connected",
            "active": True,  # the account's current connection, as the connector marks it
            "mode": mode.value,
            "processor_account_id": processor_account_id,
            **fields,
            "contact_email": CONTACT_EMAIL,
            "credentials_ciphertext": cipher.encrypt(ProcessorCredentials(api_key=SecretStr(api_key))),
            "created_at": datetime.now(UTC),
            "connected_at": datetime.now(UTC),
        }
    )
    return ProcessorConnected(
        account_id=account_id,
        connection_id=connection_id,
        processor=processor,
        mode=mode,
        processor_account_id=processor_account_id,
        contact_email=CONTACT_EMAIL,
        import_id=f"imp_{uuid.uuid4().hex[:12]}",
    )


@dataclass(frozen=True, slots=True)
class ImportRun:
    outcome: ImportCompleted
    #: Seconds from the trigger to ``ImportCompleted``.
    elapsed_s: float
    #: When the trigger went out.
    sent_at: datetime


async def run_to_completion(
    kafka: str,
    event: ProcessorConnected,
    *,
    timeout_s: float = 1800.0,
    on_progress: Callable[[ImportProgressed], None] | None = None,
) -> ImportRun:
    """Send ``event`` and wait for its import's ``ImportCompleted`` (``ImportFailed`` raises), each
    ``ImportProgressed`` of it handed to ``on_progress``."""
    consumer = AIOKafkaConsumer(topics.IMPORTS, bootstrap_servers=kafka, auto_offset_reset="latest")
    await consumer.start()
    await asyncio.sleep(1.0)  # the consumer has its partitions before the trigger goes out
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    started = time.perf_counter()
    sent_at = datetime.now(UTC)
    await producer.send_and_wait(topics.CONNECTIONS, event.model_dump_json().encode(), key=event.key())
    try:
        outcome = await completion(
            consumer, event.import_id, started=started, timeout_s=timeout_s, on_progress=on_progress
        )
    finally:
        await consumer.stop()
        await producer.stop()
    return ImportRun(outcome, time.perf_counter() - started, sent_at)


async def completion(
    consumer: AIOKafkaConsumer,
    import_id: str | None,
    *,
    started: float,
    timeout_s: float,
    on_progress: Callable[[ImportProgressed], None] | None = None,
) -> ImportCompleted:
    """The import's ``ImportCompleted`` read from ``consumer`` (on ``imports.v1``; ``ImportFailed``
    raises), each ``ImportProgressed`` of it handed to ``on_progress``; ``started``: the
    ``perf_counter`` the timeout runs from."""
    while time.perf_counter() - started <= timeout_s:
        batches = await consumer.getmany(timeout_ms=1000)
        for messages in batches.values():
            for message in messages:
                parsed = IMPORT_EVENTS.parse(message.value)
                if getattr(parsed, "import_id", None) != import_id:
                    continue
                if isinstance(parsed, ImportFailed):
                    raise RuntimeError(f"the import failed: {parsed.code}: {parsed.message}")  # noqa: TRY004
                if isinstance(parsed, ImportCompleted):
                    return parsed
                if isinstance(parsed, ImportProgressed) and on_progress is not None:
                    on_progress(parsed)
    raise TimeoutError(f"the import did not complete in {timeout_s:.0f} s")
