"""The local stack itself works: broker, store, mail catcher, process runner and the services' settings."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import smtplib
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from contracts import topics
from devstack.errors import ProcessNotReady
from devstack.infra import provide_store
from devstack.mailcatcher import MailCatcher, Stage
from devstack.net import free_port, http_status
from devstack.processes import ManagedProcess, ProcessRunner, ProcessSpec, http_ready, python_module
from devstack.pytest_plugin import RunningSandbox
from devstack.sandbox import SandboxEndpoints
from devstack.settings import SERVICES, StackSecrets, StackSettings
from devstack.topology import PAGE_REQUESTS, TopicSpec, ensure_topics, stack_topics
from nacl.public import PrivateKey, SealedBox
from pymongo import InsertOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

pytestmark = pytest.mark.infra


def is_running(process: ManagedProcess) -> bool:
    return process.running


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _request(method: str, url: str, body: dict[str, Any] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        status: int = response.status
        return status


# --- Kafka -----------------------------------------------------------------------------------------


async def test_topics_exist_with_partition_counts_and_compaction(kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        expected = {spec.name: spec for spec in stack_topics()}
        described = await admin.describe_topics(list(expected))
        partitions = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics.BILLING_TOPICS]
        )
    finally:
        await admin.close()

    assert partitions == {name: spec.partitions for name, spec in expected.items()}
    assert partitions[PAGE_REQUESTS] == 12
    assert partitions[topics.IMPORTS] == 6
    for name in (topics.ONBOARDING_REQUESTS, topics.CONNECTIONS, topics.IMPORTS, PAGE_REQUESTS):
        assert topics.dead_letter_topic(name) in partitions
    cleanup_policies = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}["cleanup.policy"]
        for response in configs
        for resource in response.resources
    }
    assert cleanup_policies == dict.fromkeys(topics.BILLING_TOPICS, "compact")


async def test_idempotent_producer_and_consumer_group_commit(kafka_bootstrap: str) -> None:
    topic = f"devstack.selftest.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=3)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for i in range(9):
            await producer.send_and_wait(topic, f"value-{i}".encode(), key=f"key-{i % 3}".encode())
    finally:
        await producer.stop()

    group = f"devstack-selftest-{uuid.uuid4().hex[:8]}"

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    first = consumer()
    await first.start()
    try:
        received: list[bytes] = []
        while len(received) < 9:
            batches = await first.getmany(timeout_ms=10_000)
            assert batches, f"only {len(received)} of 9 records arrived"
            received.extend(r.value for records in batches.values() for r in records)
        await first.commit()
    finally:
        await first.stop()
    assert sorted(received) == sorted(f"value-{i}".encode() for i in range(9))

    second = consumer()
    await second.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        committed = {p: await second.committed(p) for p in partitions}
        ends = await second.end_offsets(partitions)
        assert committed == ends
        assert sum(ends.values()) == 9
        assert await second.getmany(timeout_ms=1000) == {}
    finally:
        await second.stop()


async def test_kafka_events_collects_what_is_published_after_it_starts(
    kafka_bootstrap: str, kafka_events: Any, account_id: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topics.IMPORTS, b'{"type": "Before"}', key=account_id.encode())
        imports = await kafka_events(topics.IMPORTS)
        for event_type in ("ImportStarted", "ImportCompleted"):
            value = json.dumps({"type": event_type, "account_id": account_id}).encode()
            await producer.send_and_wait(topics.IMPORTS, value, key=account_id.encode())
    finally:
        await producer.stop()

    [completed] = await imports.wait_for_type("ImportCompleted", timeout_s=15)
    assert completed.key == account_id
    assert completed.value == {"type": "ImportCompleted", "account_id": account_id}
    assert [e.type for e in imports.events if e.key == account_id] == ["ImportStarted", "ImportCompleted"]

    everything = await kafka_events(topics.IMPORTS, start_at="beginning")
    await everything.wait_for(lambda e: e.key == account_id, count=3, timeout_s=15)
    since = await kafka_events(topics.IMPORTS, start_at=datetime.now(UTC) - timedelta(minutes=5))
    await since.wait_for(lambda e: e.key == account_id, count=3, timeout_s=15)
    from_offset = await kafka_events(topics.IMPORTS, start_at={completed.partition: completed.offset})
    [again] = await from_offset.wait_for(lambda e: e.key == account_id, timeout_s=15)
    assert again.offset == completed.offset
    with pytest.raises(TimeoutError, match="0 of 1 matching events"):
        await imports.wait_for_type("NeverPublished", timeout_s=0.5)


# --- store -----------------------------------------------------------------------------------------


def test_unique_index_and_unordered_bulk_upsert(mongo_db: Database[dict[str, Any]]) -> None:
    customers = mongo_db["customers"]
    customers.create_index([("account_id", 1), ("processor", 1), ("object_id", 1)], unique=True)

    def upsert(object_id: str, name: str) -> UpdateOne:
        key = {"account_id": "acct_1", "processor": "stripe", "object_id": object_id}
        return UpdateOne(key, {"$set": {"name": name}}, upsert=True)

    first = customers.bulk_write([upsert(f"cus_{i}", "first") for i in range(5)], ordered=False)
    assert first.upserted_count == 5
    again = customers.bulk_write([upsert(f"cus_{i}", "second") for i in range(3, 7)], ordered=False)
    assert (again.upserted_count, again.matched_count) == (2, 2)
    assert customers.count_documents({}) == 7
    assert customers.count_documents({"name": "second"}) == 4

    duplicate = {"account_id": "acct_1", "processor": "stripe", "object_id": "cus_0"}
    with pytest.raises(BulkWriteError) as failed:
        customers.bulk_write(
            [InsertOne(duplicate), upsert("cus_7", "third"), InsertOne({**duplicate, "object_id": "cus_8"})],
            ordered=False,
        )
    assert [e["code"] for e in failed.value.details["writeErrors"]] == [11000]
    assert customers.count_documents({}) == 9  # unordered: the others went through
    with pytest.raises(DuplicateKeyError):
        customers.insert_one(duplicate)


def test_each_test_gets_its_own_database(mongodb_database: str, mongo_db: Database[dict[str, Any]]) -> None:
    assert mongo_db.name == mongodb_database
    assert mongodb_database.startswith("t_test_each_test_gets")
    assert mongo_db["customers"].count_documents({}) == 0  # nothing from the test before


def test_a_store_given_by_the_environment_is_used_as_is(mongodb_url: str, tmp_path: Path) -> None:
    with provide_store(tmp_path, env={"MONGODB_URL": mongodb_url}) as store:
        assert (store.address, store.origin) == (mongodb_url, "environment")


# --- mail catcher ----------------------------------------------------------------------------------


def _email(to: str, subject: str = "Your Chargebee import is complete") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "no-reply@billing-import.test"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Imported 12 customers.\nPast cancellations: 3")
    message.add_alternative("<p>Imported <b>12</b> customers.</p>", subtype="html")
    return message


def _send(catcher: MailCatcher, message: EmailMessage) -> None:
    with smtplib.SMTP(catcher.host, catcher.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)


def test_smtp_message_is_readable_through_the_json_api(mailbox: MailCatcher) -> None:
    _send(mailbox, _email("owner@acme.example"))

    [caught] = mailbox.wait_for_messages(1, to="owner@acme.example", timeout_s=5)
    assert caught.subject == "Your Chargebee import is complete"
    assert caught.html == "<p>Imported <b>12</b> customers.</p>\n"

    assert mailbox.http_url is not None
    [listed] = _get_json(f"{mailbox.http_url}/api/messages")
    assert listed["to"] == ["owner@acme.example"]
    assert listed["from"] == "no-reply@billing-import.test"
    assert listed["text"] == "Imported 12 customers.\nPast cancellations: 3\n"
    assert "<b>12</b>" in listed["html"]
    assert _get_json(f"{mailbox.http_url}/api/messages/{listed['id']}")["subject"] == caught.subject
    with urllib.request.urlopen(f"{mailbox.http_url}/", timeout=5) as page:
        assert "Your Chargebee import is complete" in page.read().decode()

    assert _request("DELETE", f"{mailbox.http_url}/api/messages") == 204
    assert _get_json(f"{mailbox.http_url}/api/messages") == []


def test_transient_refusals_then_acceptance(mailbox: MailCatcher) -> None:
    mailbox.refuse(2, stage=Stage.RCPT)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            _send(mailbox, _email("retry@acme.example"))
        assert refused.value.recipients["retry@acme.example"][0] == 451
    _send(mailbox, _email("retry@acme.example"))

    assert len(mailbox.wait_for_messages(1, to="retry@acme.example", timeout_s=5)) == 1
    assert [stage for stage, _ in mailbox.refused] == [Stage.RCPT, Stage.RCPT]
    assert mailbox.refusal is None


def _wait_holding(catcher: MailCatcher, count: int) -> None:
    for _ in range(200):
        if catcher.holding == count:
            return
        time.sleep(0.025)
    raise AssertionError(f"holding {catcher.holding}, not {count}")


def test_a_held_message_is_kept_when_its_answer_goes_out(mailbox: MailCatcher) -> None:
    mailbox.hold(1.0)
    sender = threading.Thread(target=_send, args=(mailbox, _email("held@acme.example")))
    sender.start()
    _wait_holding(mailbox, 1)
    assert mailbox.messages == []  # in, but not answered yet
    sender.join(timeout=10)

    assert len(mailbox.wait_for_messages(1, to="held@acme.example", timeout_s=5)) == 1
    assert (mailbox.holding, mailbox.dropped) == (0, 0)


def test_a_held_message_whose_sender_leaves_is_dropped(mailbox: MailCatcher) -> None:
    mailbox.hold(30.0)
    smtp = smtplib.SMTP(mailbox.host, mailbox.smtp_port, timeout=10)
    smtp.ehlo()
    smtp.mail("no-reply@billing-import.test")
    smtp.rcpt("gone@acme.example")
    smtp.putcmd("data")
    assert smtp.getreply()[0] == 354
    smtp.send(_email("gone@acme.example").as_bytes().replace(b"\n", b"\r\n") + b"\r\n.\r\n")
    _wait_holding(mailbox, 1)
    smtp.close()  # the sender dies waiting for the answer
    _wait_holding(mailbox, 0)

    assert mailbox.dropped == 1
    assert mailbox.messages == []


def test_permanent_refusal_at_data(mailbox: MailCatcher) -> None:
    mailbox.refuse(None, stage="DATA", permanent=True)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as refused:
            _send(mailbox, _email("gone@acme.example"))
        assert refused.value.smtp_code == 550
    assert mailbox.messages == []
    mailbox.accept()
    _send(mailbox, _email("gone@acme.example"))
    assert len(mailbox.messages) == 1


def test_mail_catcher_as_its_own_process(tmp_path: Path) -> None:
    smtp_port, http_port = free_port(), free_port()
    spec = ProcessSpec(
        name="mailcatcher",
        argv=python_module(
            "devstack.mailcatcher", "--smtp-port", str(smtp_port), "--http-port", str(http_port)
        ),
        probe=http_ready(http_port),
        ready_timeout_s=20,
    )
    with ProcessRunner(tmp_path) as runner:
        runner.start(spec)
        api = f"http://127.0.0.1:{http_port}/api"
        assert _request("PUT", f"{api}/refusal", {"count": 1, "stage": "RCPT"}) == 200
        with (
            smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp,
            pytest.raises(smtplib.SMTPRecipientsRefused),
        ):
            smtp.send_message(_email("someone@acme.example"))
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.send_message(_email("someone@acme.example"))
        [message] = _get_json(f"{api}/messages")
        assert message["envelope_to"] == ["someone@acme.example"]
        assert _get_json(f"{api}/refusal") is None


# --- processes -------------------------------------------------------------------------------------


def _stand_in(stand_in_services: Path, name: str, **env: str) -> tuple[ProcessSpec, int]:
    port = free_port()
    spec = ProcessSpec(
        name=name,
        argv=python_module("connector"),
        env={"HTTP_PORT": str(port), "PYTHONPATH": str(stand_in_services), **env},
        probe=http_ready(port),
        ready_timeout_s=20,
    )
    return spec, port


def test_process_runner_kill_and_restart(stand_in_services: Path, tmp_path: Path) -> None:
    spec, port = _stand_in(stand_in_services, "stand-in")
    with ProcessRunner(tmp_path) as runner:
        process = runner.start(spec)
        first_pid = _get_json(f"http://127.0.0.1:{port}/livez")["pid"]
        assert first_pid == process.pid

        process.kill()
        assert not process.running
        assert process.returncode == -signal.SIGKILL
        assert http_status(f"http://127.0.0.1:{port}/livez") is None

        process.restart()
        assert is_running(process)  # read again: mypy keeps the narrowing of the assert above
        assert _get_json(f"http://127.0.0.1:{port}/livez")["pid"] not in (None, first_pid)
        assert process.log_tail().count("stand-in listening on") == 2
        assert (tmp_path / "stand-in.log").read_text().count("===== devstack: start #") == 2
    assert not process.running


def test_readiness_waits_for_readyz_and_reports_the_log_tail(stand_in_services: Path, tmp_path: Path) -> None:
    not_ready = tmp_path / "not-ready"
    not_ready.touch()
    spec, _ = _stand_in(stand_in_services, "slow", FAKE_NOT_READY_FILE=str(not_ready))
    with ProcessRunner(tmp_path) as runner:
        process = runner.start(spec, wait=False)
        with pytest.raises(ProcessNotReady, match=r"(?s)slow was not ready after 1 s.*stand-in listening on"):
            process.wait_ready(timeout_s=1)
        not_ready.unlink()
        process.wait_ready(timeout_s=10)

    crashing = ProcessSpec(
        "crashing",
        python_module("devstack.no_such_module"),
        probe=http_ready(free_port()),
        ready_timeout_s=10,
    )
    with ProcessRunner(tmp_path) as runner, pytest.raises(ProcessNotReady, match="No module named"):
        runner.start(crashing)


def test_children_get_only_what_they_are_given(
    stand_in_services: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "from-the-developer-shell")
    spec, port = _stand_in(stand_in_services, "env", MONGODB_DATABASE="given")
    with ProcessRunner(tmp_path) as runner:
        runner.start(spec)
        env = _get_json(f"http://127.0.0.1:{port}/env")
    assert env["MONGODB_DATABASE"] == "given"
    assert "SMTP_PASSWORD" not in env
    assert "PATH" in env


# --- settings and run_services ---------------------------------------------------------------------


def test_settings_give_each_service_its_spec_variables() -> None:
    secrets = StackSecrets.generate()
    settings = StackSettings(
        kafka_bootstrap_servers="127.0.0.1:9092",
        mongodb_url="mongodb://127.0.0.1:27017",
        smtp_port=1025,
        secrets=secrets,
        sandbox=SandboxEndpoints(
            "http://127.0.0.1:8100", "http://127.0.0.1:8100", "http://127.0.0.1:8100/sites/{site}/api/v2"
        ),
    )
    connector, importer, notifier = (settings.service_env(s) for s in SERVICES)

    assert len(base64.urlsafe_b64decode(connector["CREDENTIALS_KEYS"])) == 32
    assert connector["CREDENTIALS_KEYS"] == importer["CREDENTIALS_KEYS"]
    private = base64.b64decode(connector["CONNECTOR_PRIVATE_KEY"])
    assert len(private) == 32
    sealed = base64.b64decode(secrets.seal("sk_test_sealed"))
    assert SealedBox(PrivateKey(private)).decrypt(sealed) == b"sk_test_sealed"
    assert connector["CHARGEBEE_API_URL_TEMPLATE"] == "http://127.0.0.1:8100/sites/{site}/api/v2"
    assert {connector["HTTP_PORT"], importer["HTTP_PORT"], notifier["HTTP_PORT"]} == {
        str(settings.http_ports[s]) for s in SERVICES
    }
    assert "API_JWT_SECRET" not in notifier
    assert "CONNECTOR_PRIVATE_KEY" not in importer
    assert "SMTP_PORT" not in connector
    assert notifier["SMTP_PORT"] == "1025"
    assert all(env["OTEL_SDK_DISABLED"] == "true" for env in (connector, importer, notifier))
    assert repr(secrets) == "StackSecrets(<redacted>)"

    claims = jwt.decode(settings.jwt("acct_42"), connector["API_JWT_SECRET"], algorithms=["HS256"])
    assert claims["sub"] == "acct_42"
    assert claims["exp"] > datetime.now(UTC).timestamp()


@pytest.fixture(scope="module")
def sandbox_processors(stand_in_sandbox: RunningSandbox) -> RunningSandbox:
    """This module checks the stack's plumbing, not the sandbox: a stand-in takes its place."""
    return stand_in_sandbox


def test_run_services_starts_kills_and_restarts_processes(
    run_services: Any, stand_in_services: Path, service_env: Any, mongodb_database: str
) -> None:
    path = {"PYTHONPATH": str(stand_in_services)}
    stack = run_services(env=dict.fromkeys(SERVICES, path))

    for service in SERVICES:
        env = _get_json(stack.url(service, "/env"))
        assert env.items() >= {**service_env(service), **path}.items()
        assert env["MONGODB_DATABASE"] == mongodb_database
        assert env["HTTP_PORT"] == str(stack.settings.http_ports[service])

    first_pid = stack["importer"].pid
    stack.kill("importer")
    assert http_status(stack.url("importer", "/livez")) is None
    stack.restart("importer")
    assert stack["importer"].pid != first_pid
    assert http_status(stack.url("importer", "/readyz")) == 200


async def test_blocking_waits_have_async_twins(mailbox: MailCatcher) -> None:
    waiting = asyncio.create_task(mailbox.wait_for_messages_async(1, to="async@acme.example", timeout_s=10))
    await asyncio.to_thread(_send, mailbox, _email("async@acme.example"))
    assert [m.subject for m in await waiting] == ["Your Chargebee import is complete"]
