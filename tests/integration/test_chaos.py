"""Chaos: an import of more than 50,000 objects while everything around it fails, and a mail outage.

The importer is SIGKILLed at random points, the store is down for 30 s and the broker restarts, all
while one import runs; it must still end with exactly the processor's objects stored once each,
exactly one ``ImportCompleted`` and exactly one email. An SMTP server refusing mail for two minutes
delays the email of a completed import but sends it once, with nobody replaying anything.

These tests own their broker and store (restarting the session's would disturb other tests) and a
sandbox serving a large history; their seed is printed so a failing run can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from contracts import topics
from contracts.connections import CredentialCipher, ProcessorCredentials
from contracts.events import IMPORT_EVENTS, Event, ImportCompleted, Mode, Processor, ProcessorConnected
from devstack.mailcatcher import MailCatcher
from devstack.net import free_port
from devstack.processes import ManagedProcess, ProcessSpec, http_answers, python_module
from devstack.sandbox import SandboxEndpoints
from devstack.settings import StackSecrets, StackSettings
from devstack.stack import ServiceStack
from devstack.store import LocalStore
from importer.domain.resources import count_key
from pydantic import SecretStr
from pymongo import MongoClient
from pymongo.database import Database
from sandbox.client import SandboxAdmin

from devstack.kafka import LocalKafka
from sandbox import config as sandbox_config

pytestmark = pytest.mark.infra

#: 6,000 customers make 50,613 Stripe objects (37,968 invoices) in the sample history.
CUSTOMERS: Final = 6000
PAGE_LATENCY_MS: Final = 100
#: The importer paces its requests to this share of Stripe's live limits (10/s, 2.5/s per endpoint), so
#: the import lasts minutes however fast the machine is, and each fault finds it under way. Its rate
#: budget refills while an importer is down, so a restarted one catches up in a burst: the faults come
#: in the first half of the import, leaving room for that.
RATE_HEADROOM: Final = "0.1"
IMPORTER_KILLS: Final = 5
STORE_OUTAGE_S: Final = 30.0
SMTP_OUTAGE_S: Final = 120.0
IMPORT_TIMEOUT_S: Final = 900.0
#: A broker or store coming back on a busy two-core machine may take minutes to serve again.
RESTART_READY_S: Final = 300.0
CONTACT: Final = "chaos-owner@example.com"
STRIPE_RESOURCES: Final = ("customers", "products", "prices", "plans", "coupons", "subscriptions", "invoices")
SEED: Final = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(1 << 30))))


@dataclass
class ChaosStack:
    kafka: LocalKafka
    store: LocalStore
    stripe_api_base: str
    settings: StackSettings
    log_dir: Path
    database: Database[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.store.url, tz_aware=True, retryWrites=False, serverSelectionTimeoutMS=60_000
        )
        self.database = client[self.settings.mongodb_database]


@pytest.fixture(scope="module")
def chaos(
    devstack_log_dir: Path, smtp_catcher: MailCatcher, stack_secrets: StackSecrets
) -> Iterator[ChaosStack]:
    log_dir = devstack_log_dir / "chaos"
    log_dir.mkdir(parents=True, exist_ok=True)
    kafka = LocalKafka(log_dir / "kafka.log").start()
    store = LocalStore(log_dir / "store.log").start()
    stripe_port = free_port()
    sandbox = ManagedProcess(
        ProcessSpec(
            name="sandbox-large",
            argv=python_module(
                "sandbox",
                "--only",
                "stripe",
                "--customers",
                str(CUSTOMERS),
                "--stripe-port",
                str(stripe_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ),
            env={"OTEL_SDK_DISABLED": "true"},
            probe=http_answers(f"http://127.0.0.1:{stripe_port}/_sandbox/stats"),
            ready_timeout_s=300,
        ),
        log_dir / "sandbox.log",
    ).start()
    stripe = f"http://127.0.0.1:{stripe_port}"
    settings = StackSettings(
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        mongodb_url=store.url,
        mongodb_database=f"chaos_{uuid.uuid4().hex[:8]}",
        smtp_host=smtp_catcher.host,
        smtp_port=smtp_catcher.smtp_port,
        secrets=stack_secrets,
        sandbox=SandboxEndpoints(
            stripe_api_base=stripe,
            stripe_connect_base=stripe,
            chargebee_api_url_template="http://127.0.0.1:9/{site}",
        ),
    )
    try:
        yield ChaosStack(kafka, store, stripe, settings, log_dir)
    finally:
        sandbox.stop()
        store.stop()
        kafka.stop()


def served_ids(stripe_api_base: str, api_key: str) -> dict[str, set[str]]:
    """The ids the fake serves per resource, read through its own list API (what an import must reach)."""
    served: dict[str, set[str]] = {}
    with httpx.Client(base_url=stripe_api_base, auth=(api_key, ""), timeout=30) as client:
        for resource in STRIPE_RESOURCES:
            params: dict[str, Any] = {"limit": 100}
            if resource == "subscriptions":
                params["status"] = "all"
            ids: set[str] = set()
            while True:
                page = client.get(f"/v1/{resource}", params=params).raise_for_status().json()
                ids.update(str(item["id"]) for item in page["data"])
                if not page["has_more"]:
                    break
                params["starting_after"] = page["data"][-1]["id"]
            served[resource] = ids
    return served


def connect(chaos: ChaosStack, api_key: str) -> tuple[str, str]:
    account_id = f"acct_chaos_{uuid.uuid4().hex[:8]}"
    connection_id = f"conn_{uuid.uuid4().hex[:10]}"
    cipher = CredentialCipher.from_setting(chaos.settings.secrets.credentials_keys)
    chaos.database.connections.insert_one(
        {
            "_id": connection_id,
            "account_id": account_id,
            "processor": "stripe",
            "status": "connected",
            "mode": "live",
            "processor_account_id": sandbox_config.SAMPLE_STRIPE_ACCOUNT_ID,
            "contact_email": CONTACT,
            "credentials_ciphertext": cipher.encrypt(ProcessorCredentials(api_key=SecretStr(api_key))),
            "created_at": datetime.now(UTC),
            "connected_at": datetime.now(UTC),
        }
    )
    return account_id, connection_id


class ImportEvents:
    """Every ``imports.v1`` event, read from the start, through broker restarts."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.events: list[Event] = []
        self._consumer = AIOKafkaConsumer(
            topics.IMPORTS,
            bootstrap_servers=bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ImportEvents:
        await self._consumer.start()
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()

    async def _collect(self) -> None:
        async for message in self._consumer:
            if message.value is not None and (parsed := IMPORT_EVENTS.parse(message.value)) is not None:
                self.events.append(parsed)

    def of(self, kind: type[Event], import_id: str) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind) and getattr(e, "import_id", None) == import_id]


@pytest.fixture
async def producer(chaos: ChaosStack) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=chaos.kafka.bootstrap_servers, acks="all")
    await client.start()
    yield client
    await client.stop()


def objects_done(database: Database[dict[str, Any]], import_id: str) -> int:
    pages = database.import_pages.find({"import_id": import_id, "status": "done"}, {"objects": True})
    return sum(int(page.get("objects") or 0) for page in pages)


def import_status(database: Database[dict[str, Any]], import_id: str) -> str | None:
    document = database.imports.find_one({"_id": import_id}, {"status": True})
    return None if document is None else str(document.get("status"))


async def until_done_reaches(chaos: ChaosStack, import_id: str, objects: int) -> None:
    deadline = time.monotonic() + IMPORT_TIMEOUT_S
    while objects_done(chaos.database, import_id) < objects:
        assert time.monotonic() < deadline, f"the import did not reach {objects} objects"
        await asyncio.sleep(0.1)


@pytest.mark.timeout(IMPORT_TIMEOUT_S + 600)
async def test_an_import_survives_importer_kills_a_store_outage_and_a_broker_restart(
    chaos: ChaosStack, mailbox: MailCatcher, producer: AIOKafkaProducer
) -> None:
    print(f"chaos seed: {SEED} (CHAOS_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    api_key = sandbox_config.live_stripe_key()
    admin = SandboxAdmin(chaos.stripe_api_base)
    admin.update_settings(latency_s=0)
    served = served_ids(chaos.stripe_api_base, api_key)
    # Pages take as long as a real processor's, so that the import is under way when each fault comes.
    admin.update_settings(latency_s=PAGE_LATENCY_MS / 1000)
    expected = {count_key(Processor.STRIPE, resource): len(ids) for resource, ids in served.items()}
    total = sum(expected.values())
    assert total >= 50_000
    paced = replace(
        chaos.settings, extra_env={**chaos.settings.extra_env, "PROCESSOR_RATE_HEADROOM": RATE_HEADROOM}
    )
    stack = ServiceStack(paced, chaos.log_dir / "services")
    stack.start(("importer", "notifier"))
    try:
        account_id, connection_id = connect(chaos, api_key)
        import_id = f"imp_{uuid.uuid4().hex[:12]}"
        async with ImportEvents(chaos.kafka.bootstrap_servers) as events:
            await producer.send_and_wait(
                topics.CONNECTIONS,
                ProcessorConnected(
                    account_id=account_id,
                    connection_id=connection_id,
                    processor=Processor.STRIPE,
                    mode=Mode.LIVE,
                    processor_account_id=sandbox_config.SAMPLE_STRIPE_ACCOUNT_ID,
                    contact_email=CONTACT,
                    import_id=import_id,
                )
                .model_dump_json()
                .encode(),
                key=account_id.encode(),
            )
            # Faults at random points of the first half of the import, in order of progress.
            kill_points = sorted(rng.uniform(0.03, 0.35) for _ in range(IMPORTER_KILLS))
            faults = [(point, "kill importer") for point in kill_points]
            faults += [(rng.uniform(0.36, 0.42), "store down"), (rng.uniform(0.43, 0.50), "broker restart")]
            for point, fault in faults:
                await until_done_reaches(chaos, import_id, int(total * point))
                assert import_status(chaos.database, import_id) == "running", f"finished before: {fault}"
                print(f"{fault} at {objects_done(chaos.database, import_id)} of {total} objects")
                if fault == "kill importer":
                    stack.kill("importer")
                    stack.restart("importer")
                elif fault == "store down":
                    assert chaos.store.process is not None
                    chaos.store.process.stop()
                    await asyncio.sleep(STORE_OUTAGE_S)
                    chaos.store.process.start(wait=False)
                    await asyncio.to_thread(chaos.store.process.wait_ready, RESTART_READY_S)
                else:
                    broker = chaos.kafka.process
                    assert broker is not None
                    await asyncio.to_thread(broker.stop)
                    broker.start(wait=False)
                    await asyncio.to_thread(broker.wait_ready, RESTART_READY_S)

            deadline = time.monotonic() + IMPORT_TIMEOUT_S
            while not events.of(ImportCompleted, import_id):
                assert time.monotonic() < deadline, "no ImportCompleted"
                assert import_status(chaos.database, import_id) != "failed", "the import failed"
                await asyncio.sleep(0.5)
            [email] = await mailbox.wait_for_messages_async(to=CONTACT, timeout_s=120)
            await asyncio.sleep(5.0)  # anything sent twice would arrive by now

            completed = events.of(ImportCompleted, import_id)
            assert len({event.event_id for event in completed}) == 1
            [outcome] = completed[:1]
            assert isinstance(outcome, ImportCompleted)
            imported = {key: count.imported for key, count in outcome.resources.items()}
            stored = {
                collection: chaos.database[collection].count_documents({"account_id": account_id})
                for collection in ("customers", "subscriptions", "invoices", "coupons", "prices")
            }
        assert "complete" in email.subject.lower()
        assert len(mailbox.wait_for_messages(to=CONTACT, timeout_s=1)) == 1
        assert imported == expected
        # One document per object: recurring prices are served as legacy plans too, under the same id.
        assert stored == {
            "customers": len(served["customers"]),
            "subscriptions": len(served["subscriptions"]),
            "invoices": len(served["invoices"]),
            "coupons": len(served["coupons"]),
            "prices": len(served["prices"] | served["plans"]),
        }
        assert chaos.database.import_pages.count_documents({"import_id": import_id, "status": "pending"}) == 0
        assert chaos.database.imports.find_one({"_id": import_id}, {"status": 1}) == {
            "_id": import_id,
            "status": "completed",
        }
    finally:
        stack.stop()


@pytest.mark.timeout(SMTP_OUTAGE_S + 600)
async def test_an_smtp_outage_of_two_minutes_delays_the_email_but_sends_it_once(
    chaos: ChaosStack, mailbox: MailCatcher, producer: AIOKafkaProducer
) -> None:
    stack = ServiceStack(replace(chaos.settings), chaos.log_dir / "smtp-outage")
    stack.start(("notifier",))
    contact = f"outage-{uuid.uuid4().hex[:8]}@example.com"
    mailbox.refuse(None)  # every RCPT answered 451 until accepted again
    try:
        started = datetime.now(UTC)
        completed = ImportCompleted(
            account_id=f"acct_{uuid.uuid4().hex[:8]}",
            import_id=f"imp_{uuid.uuid4().hex[:12]}",
            processor=Processor.STRIPE,
            resources={},
            past_cancellations=0,
            started_at=started,
            finished_at=started,
            contact_email=contact,
        )
        await producer.send_and_wait(
            topics.IMPORTS, completed.model_dump_json().encode(), key=completed.key()
        )
        await asyncio.sleep(SMTP_OUTAGE_S)
        assert mailbox.wait_for_messages(0, to=contact, timeout_s=0) == []
        assert mailbox.refused, "the notifier did not try while the server refused"
        mailbox.accept()

        [email] = await mailbox.wait_for_messages_async(to=contact, timeout_s=180)
        await asyncio.sleep(5.0)
        assert len(mailbox.wait_for_messages(to=contact, timeout_s=1)) == 1
        assert "complete" in email.subject.lower()
    finally:
        mailbox.accept()
        stack.stop()
