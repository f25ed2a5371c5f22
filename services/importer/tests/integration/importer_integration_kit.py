"""Helpers of the importer's integration tests: fake processors, importer processes, triggers."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from contracts import topics
from contracts.connections import CredentialCipher, ProcessorCredentials
from contracts.events import ImportRequested, Mode, Processor, ProcessorConnected
from contracts.sync import SYNC_STATE_COLLECTION
from devstack.net import free_port
from devstack.processes import ManagedProcess, ProcessSpec, http_ready, python_module
from devstack.sandbox import SandboxEndpoints
from devstack.settings import StackSecrets, StackSettings
from pydantic import SecretStr
from pymongo.database import Database
from sandbox.client import SandboxAdmin
from sandbox.data import Dataset

from sandbox import config as sandbox_config

CUSTOMERS = 400
SHARED_CREATED_RATIO = 0.1
LATENCY_MS = 60
SEED = 42


@dataclass(frozen=True)
class FakeProcessors:
    endpoints: SandboxEndpoints
    dataset: Dataset
    stripe_url: str
    process: ManagedProcess
    _served: dict[Processor, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def fault(self, **spec: Any) -> None:
        httpx.post(f"{self.stripe_url}/_sandbox/faults", json=spec, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.stripe_url}/_sandbox/faults", timeout=10).raise_for_status()

    def served(self, processor: Processor) -> dict[str, list[dict[str, Any]]]:
        """Every object the fake serves, per resource, read through its API page by page with the
        expansions an importer asks for (Chargebee lists leave deleted objects out); read once."""
        if processor not in self._served:
            if processor is Processor.STRIPE:
                self._served[processor] = {
                    resource: self._stripe_list(resource) for resource in self.dataset.stripe
                }
            else:
                self._served[processor] = {
                    resource: self._chargebee_list(resource) for resource in self.dataset.chargebee
                }
        return self._served[processor]

    def _stripe_list(self, resource: str) -> list[dict[str, Any]]:
        extra = {
            "subscriptions": [("status", "all"), ("expand[]", "data.discounts")],
            "prices": [("expand[]", "data.product")],
            "plans": [("expand[]", "data.product")],
        }.get(resource, [])
        objects: list[dict[str, Any]] = []
        after: str | None = None
        with httpx.Client(
            timeout=30, headers={"Authorization": f"Bearer {sandbox_config.SAMPLE_STRIPE_KEY}"}
        ) as http:
            while True:
                params: list[tuple[str, str | int | float | bool | None]] = [
                    ("limit", "100"),
                    *extra,
                    *([("starting_after", after)] if after else []),
                ]
                body = http.get(f"{self.stripe_url}/v1/{resource}", params=params).raise_for_status().json()
                objects.extend(body["data"])
                if not body["has_more"]:
                    return objects
                after = body["data"][-1]["id"]

    def _chargebee_list(self, resource: str) -> list[dict[str, Any]]:
        entry = {
            "item_prices": "item_price",
            "items": "item",
            "customers": "customer",
            "invoices": "invoice",
            "subscriptions": "subscription",
            "coupons": "coupon",
            "plans": "plan",
            "addons": "addon",
        }[resource]
        base = self.endpoints.chargebee_api_url_template.replace(
            "{site}", sandbox_config.SAMPLE_CHARGEBEE_SITE
        )
        objects: list[dict[str, Any]] = []
        offset: str | None = None
        with httpx.Client(timeout=30, auth=(sandbox_config.SAMPLE_CHARGEBEE_KEY, "")) as http:
            while True:
                params: list[tuple[str, str | int | float | bool | None]] = [
                    ("limit", "100"),
                    *([("offset", offset)] if offset else []),
                ]
                body = http.get(f"{base}/{resource}", params=params).raise_for_status().json()
                objects.extend(item[entry] for item in body["list"])
                offset = body.get("next_offset")
                if not offset:
                    return objects

    def admin(self, processor: Processor) -> SandboxAdmin:
        """The control API of the fake serving ``processor``."""
        if processor is Processor.STRIPE:
            return SandboxAdmin(self.stripe_url)
        api = self.endpoints.chargebee_api_url_template
        return SandboxAdmin(api[: api.index("/sites/")])

    def set_latency(self, seconds: float | None) -> None:
        """Every Stripe list page answered this much later (``None``: the suite's usual latency)."""
        latency = LATENCY_MS / 1000 if seconds is None else seconds
        self.admin(Processor.STRIPE).update_settings(latency_s=latency)


@dataclass
class Importers:
    """``python -m importer`` processes on one database; each logs one line per page at INFO."""

    settings: StackSettings
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(self, count: int = 1, **env: str) -> list[ManagedProcess]:
        started = []
        for _ in range(count):
            port = free_port()
            index = len(self.processes)
            spec = ProcessSpec(
                name=f"importer-{index}",
                argv=python_module("importer"),
                env=self.settings.service_env("importer", HTTP_PORT=str(port), LOG_LEVEL="INFO", **env),
                probe=http_ready(port),
                ready_timeout_s=60,
            )
            process = ManagedProcess(spec, self.log_dir / f"importer-{index}-{uuid.uuid4().hex[:6]}.log")
            self.processes.append(process)
            started.append(process)
        for process in started:
            process.start(wait=False)
        for process in started:
            process.wait_ready()
        return started

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def port_of(self, process: ManagedProcess) -> int:
        return int(process.spec.env["HTTP_PORT"])

    def pages_handled(self, process: ManagedProcess, import_id: str) -> int:
        """Pages of the import this process logged as handled."""
        lines = process.log_path.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if '"page.handled"' in line and import_id in line)


def objects_done(database: Database[dict[str, Any]], import_id: str) -> int:
    """Objects of the import's pages done so far, from the ledger."""
    pages = database.import_pages.find(
        {"import_id": import_id, "status": "done"}, projection={"objects": True}
    )
    return sum(int(page.get("objects") or 0) for page in pages)


@dataclass(frozen=True)
class Connection:
    account_id: str
    connection_id: str
    processor: Processor
    mode: Mode
    processor_account_id: str


def connect(database: Database[dict[str, Any]], secrets: StackSecrets, processor: Processor) -> Connection:
    """A connected connection in the ``connections`` collection, as the connector leaves it."""
    account_id = f"acct_{uuid.uuid4().hex[:10]}"
    connection_id = f"conn_{uuid.uuid4().hex[:10]}"
    cipher = CredentialCipher.from_setting(secrets.credentials_keys)
    if processor is Processor.STRIPE:
        key, extra = (
            sandbox_config.SAMPLE_STRIPE_KEY,
            {"processor_account_id": sandbox_config.SAMPLE_STRIPE_ACCOUNT_ID},
        )
    else:
        key = sandbox_config.SAMPLE_CHARGEBEE_KEY
        extra = {
            "processor_account_id": sandbox_config.SAMPLE_CHARGEBEE_SITE,
            "site": sandbox_config.SAMPLE_CHARGEBEE_SITE,
            "product_catalog": "2.0",
        }
    database.connections.insert_one(
        {
            "_id": connection_id,
            "account_id": account_id,
            "processor": processor.value,
            "status": "connected",
            "mode": "test",
            "contact_email": "owner@example.com",
            "credentials_ciphertext": cipher.encrypt(ProcessorCredentials(api_key=SecretStr(key))),
            "created_at": datetime.now(UTC),
            "connected_at": datetime.now(UTC),
            **extra,
        }
    )
    return Connection(account_id, connection_id, processor, Mode.TEST, str(extra["processor_account_id"]))


async def trigger(producer: AIOKafkaProducer, connection: Connection, import_id: str | None = None) -> str:
    """Publish ``ProcessorConnected`` for the connection (as the connector does); the import id."""
    import_id = import_id or f"imp_{uuid.uuid4().hex[:12]}"
    event = ProcessorConnected(
        account_id=connection.account_id,
        connection_id=connection.connection_id,
        processor=connection.processor,
        mode=connection.mode,
        processor_account_id=connection.processor_account_id,
        contact_email="owner@example.com",
        import_id=import_id,
    )
    await producer.send_and_wait(topics.CONNECTIONS, event.model_dump_json().encode(), key=event.key())
    return import_id


async def request_import(producer: AIOKafkaProducer, connection: Connection) -> str:
    import_id = f"imp_{uuid.uuid4().hex[:12]}"
    event = ImportRequested(
        account_id=connection.account_id,
        connection_id=connection.connection_id,
        processor=connection.processor,
        mode=connection.mode,
        processor_account_id=connection.processor_account_id,
        contact_email="owner@example.com",
        import_id=import_id,
    )
    await producer.send_and_wait(topics.CONNECTIONS, event.model_dump_json().encode(), key=event.key())
    return import_id


async def wait_until(check: Any, *, timeout_s: float = 120.0, interval_s: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise TimeoutError("the condition did not hold in time")
        await asyncio.sleep(interval_s)


async def imported_and_syncing(
    database: Database[dict[str, Any]], producer: AIOKafkaProducer, connection: Connection
) -> None:
    """Import the connection, then wait until its sync is live."""
    import_id = await trigger(producer, connection)
    await wait_until(
        lambda: (database.imports.find_one({"_id": import_id}) or {}).get("status") == "completed",
        timeout_s=240,
    )
    await wait_until(
        lambda: (
            (database[SYNC_STATE_COLLECTION].find_one({"_id": connection.connection_id}) or {}).get("status")
            == "live"
        ),
        timeout_s=120,
    )


def record(
    database: Database[dict[str, Any]], collection: str, connection: Connection, object_id: str
) -> Any:
    """The stored record of a processor object of the connection's account, or None."""
    return database[collection].find_one(
        {"_id": f"{connection.account_id}:{connection.processor.value}:{object_id}"}
    )
