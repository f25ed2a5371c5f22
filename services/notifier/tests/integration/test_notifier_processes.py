"""``python -m notifier`` as real processes: two of them in one consumer group still send one email;
one killed while the SMTP server holds its email sends it again, under the same Message-ID."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from contracts import topics
from devstack.net import free_port
from devstack.processes import ManagedProcess, ProcessSpec, http_ready, python_module
from notifier.settings import NotifierSettings
from notifier_integration_kit import AnImport, PublishImportEvent
from pymongo import MongoClient

WAIT_S = 60.0
#: Set (without a username, so the catcher needs no AUTH) to prove configuration is never logged.
SMTP_PASSWORD = "smtp-secret-that-must-not-be-logged"


def notifier_env(settings: NotifierSettings, http_port: int) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "HTTP_PORT": str(http_port),
        "SMTP_HOST": settings.smtp_host,
        "SMTP_PORT": str(settings.smtp_port),
        "SMTP_FROM": settings.smtp_from,
        "APP_BASE_URL": settings.app_base_url,
        "EMAIL_RETRY_BASE_DELAY_S": "0.05",
        "EMAIL_RETRY_MAX_DELAY_S": "0.2",
        "EMAIL_LEASE_S": "15",
        "SMTP_TIMEOUT_S": "5",
        "OTEL_SDK_DISABLED": "true",
        "SMTP_PASSWORD": SMTP_PASSWORD,
    }


def start_notifier(settings: NotifierSettings, name: str, log_dir: Path) -> tuple[ManagedProcess, int]:
    """A ``python -m notifier`` process, ready, and its HTTP port."""
    port = free_port()
    spec = ProcessSpec(
        name=name, argv=python_module("notifier"), env=notifier_env(settings, port), probe=http_ready(port)
    )
    return ManagedProcess(spec, log_dir / f"{name}.log").start(), port


@pytest.fixture
def two_notifiers(
    notifier_settings: NotifierSettings, tmp_path: Path
) -> Iterator[list[tuple[ManagedProcess, int]]]:
    processes: list[tuple[ManagedProcess, int]] = []
    try:
        for name in ("notifier-a", "notifier-b"):
            processes.append(start_notifier(notifier_settings, name, tmp_path))
        yield processes
    finally:
        for process, _ in processes:
            process.stop()


def handled_lines(process: ManagedProcess, import_id: str) -> list[dict[str, Any]]:
    lines = []
    for raw in process.log_path.read_text().splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            if line.get("event") == "email.handled" and line.get("import_id") == import_id:
                lines.append(line)
    return lines


async def test_two_notifier_processes_send_one_email_and_log_one_line_per_delivery(
    two_notifiers: list[tuple[ManagedProcess, int]],
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)
    event = an_import.completed()

    await asyncio.gather(*(publish_import_event(event) for _ in range(3)))
    later = an_import.sibling()
    await publish_import_event(later.completed())
    await mailbox.wait_for_messages_async(1, to=later.contact_email, timeout_s=WAIT_S)
    await receipts.wait_for(
        lambda e: e.type == "EmailSent" and e.value["import_id"] == later.import_id, timeout_s=WAIT_S
    )

    assert len([m for m in mailbox.messages if an_import.contact_email in m.recipients]) == 1
    outcomes = [
        line["outcome"]
        for process, _ in two_notifiers
        for line in handled_lines(process, an_import.import_id)
    ]
    # One line per delivery; a rebalance between the two may redeliver a copy, never resend it.
    assert outcomes.count("sent") == 1
    assert len(outcomes) >= 3
    assert set(outcomes) == {"sent", "already_sent"}
    assert all(SMTP_PASSWORD not in process.log_path.read_text() for process, _ in two_notifiers)
    async with httpx.AsyncClient() as http:
        for _, port in two_notifiers:
            ready = await http.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.json() == {"status": "ok", "checks": {"kafka": "ok", "mongodb": "ok"}}


def message_id(raw: bytes) -> str:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return str(parsed["Message-ID"])


async def test_a_notifier_killed_mid_smtp_sends_the_email_once_after_a_restart(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
    tmp_path: Path,
) -> None:
    """``kill -9`` while the SMTP server holds the email, before it accepted it: the server drops it
    (no answer, no responsibility), the event was not committed, and the restarted notifier takes
    the send over once the dead one's lease (15 s here) runs out. One email, one receipt."""
    process, _ = start_notifier(notifier_settings, "notifier-killed", tmp_path)
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)
    try:
        mailbox.hold(5.0)
        await publish_import_event(an_import.completed())
        for _ in range(int(WAIT_S / 0.05)):
            if mailbox.holding:
                break
            await asyncio.sleep(0.05)
        assert mailbox.holding == 1, "the email never reached the server"
        process.kill()
        mailbox.hold(0)
        process.start()

        await receipts.wait_for(
            lambda e: e.type == "EmailSent" and e.value["import_id"] == an_import.import_id, timeout_s=WAIT_S
        )
        await asyncio.sleep(1.0)  # a second email or receipt, if any, would be out by now
    finally:
        process.stop()

    assert mailbox.dropped == 1  # the kill did land mid-conversation
    [delivered] = [m for m in mailbox.messages if an_import.contact_email in m.recipients]
    # The stable Message-ID the dead sender used too: a copy it got through would be the same email.
    assert message_id(delivered.raw).startswith(f"<import-{an_import.import_id}.completed@")
    sent = [
        e for e in receipts.events if e.type == "EmailSent" and e.value["import_id"] == an_import.import_id
    ]
    assert len({e.value["event_id"] for e in sent}) == 1
    client: MongoClient[dict[str, Any]] = MongoClient(notifier_settings.mongodb_url)
    [entry] = list(client[notifier_settings.mongodb_database]["email_ledger"].find())
    client.close()
    assert entry["state"] == "sent"
    assert "email.takeover" in process.log_path.read_text()
