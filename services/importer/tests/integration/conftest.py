"""Fixtures of the importer's integration tests: the real broker and store, fake processors of their
own, ``python -m importer`` processes.

The fake processors here are this suite's own (``python -m sandbox`` with a few hundred customers, a
little latency so an import lasts long enough to be interrupted, and bursts of objects sharing one
creation time so that slice borders fall on ties); the expected data is generated in the test with
the same options, so counts and fields are compared with exactly what the fake serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from devstack.net import free_port
from devstack.processes import ManagedProcess, ProcessSpec, http_answers, python_module
from devstack.sandbox import SandboxEndpoints
from devstack.settings import StackSecrets, StackSettings
from importer_integration_kit import (
    CUSTOMERS,
    LATENCY_MS,
    SEED,
    SHARED_CREATED_RATIO,
    FakeProcessors,
    Importers,
)
from sandbox.data import DatasetOptions, generate_dataset


@pytest.fixture(scope="session")
def fake_processors(devstack_log_dir: Path) -> Iterator[FakeProcessors]:
    stripe_port, chargebee_port = free_port(), free_port()
    argv = python_module(
        "sandbox",
        "--stripe-port",
        str(stripe_port),
        "--chargebee-port",
        str(chargebee_port),
        "--customers",
        str(CUSTOMERS),
        "--seed",
        str(SEED),
        "--shared-created-ratio",
        str(SHARED_CREATED_RATIO),
        "--latency-ms",
        str(LATENCY_MS),
        "--chargebee-rate-limit-per-min",
        "0",
        "--no-access-log",
    )
    stripe_url, chargebee_url = f"http://127.0.0.1:{stripe_port}", f"http://127.0.0.1:{chargebee_port}"
    process = ManagedProcess(
        ProcessSpec(
            name="importer-sandbox",
            argv=argv,
            env={"OTEL_SDK_DISABLED": "true"},
            probe=http_answers(f"{stripe_url}/", f"{chargebee_url}/"),
            ready_timeout_s=120,
        ),
        devstack_log_dir / "importer-sandbox.log",
    ).start()
    dataset = generate_dataset(
        DatasetOptions(seed=SEED, customers=CUSTOMERS, shared_created_ratio=SHARED_CREATED_RATIO)
    )
    try:
        yield FakeProcessors(
            SandboxEndpoints(stripe_url, stripe_url, f"{chargebee_url}/sites/{{site}}/api/v2"),
            dataset,
            stripe_url,
            process,
        )
    finally:
        process.stop()


@pytest.fixture
def importer_settings(
    kafka_bootstrap: str,
    mongodb_url: str,
    mongodb_database: str,
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
) -> StackSettings:
    return StackSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        mongodb_url=mongodb_url,
        mongodb_database=mongodb_database,
        smtp_port=1025,
        secrets=stack_secrets,
        sandbox=fake_processors.endpoints,
    )


@pytest.fixture
def importers(
    importer_settings: StackSettings, devstack_log_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Importers]:
    log_dir = devstack_log_dir / "importer-integration" / request.node.name
    log_dir.mkdir(parents=True, exist_ok=True)
    running = Importers(importer_settings, log_dir)
    try:
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    started = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
