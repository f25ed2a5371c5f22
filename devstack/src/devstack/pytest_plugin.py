"""pytest fixtures of the local stack, loaded in every test run of the workspace (``pytest11`` entry point).

Session-wide (started once, on first use): ``kafka_bootstrap``, ``mongodb_url``, ``smtp_catcher``,
``stack_secrets``, ``sandbox_processors``. Per test: ``mongodb_database`` (a fresh name), ``mongo_db``,
``mailbox``, ``stack_settings``, ``service_env``, ``run_services``, ``kafka_events``.

A test that needs a broker or store that cannot be had is skipped, or fails when ``CI=true``. Tests
using these fixtures get the ``infra`` marker, so ``-m "not infra"`` runs the rest alone.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

import pytest
import pytest_asyncio

from devstack.errors import InfrastructureUnavailable
from devstack.infra import Provided, in_ci, provide_kafka, provide_store
from devstack.paths import log_dir
from devstack.settings import SERVICES, StackSecrets, StackSettings

if TYPE_CHECKING:
    from pymongo.database import Database

    from devstack.events import StartAt, TopicCollector
    from devstack.mailcatcher import MailCatcher
    from devstack.processes import ManagedProcess
    from devstack.sandbox import SampleCredentials, SandboxEndpoints
    from devstack.stack import ServiceStack

#: Fixtures that need the real broker, store or SMTP server: their tests are marked ``infra``.
INFRA_FIXTURES: Final = frozenset(
    {
        "kafka_bootstrap",
        "mongodb_url",
        "smtp_catcher",
        "mailbox",
        "mongodb_database",
        "mongo_db",
        "stack_settings",
        "service_env",
        "run_services",
        "kafka_events",
        "sandbox_processors",
    }
)
_DATABASE_NAME_MAX: Final = 60


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "infra: needs the real broker, store and SMTP server (started locally when none is given)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INFRA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.infra)


def _unavailable(error: InfrastructureUnavailable) -> NoReturn:
    if in_ci():
        pytest.fail(f"infrastructure unavailable in CI: {error}", pytrace=False)
    pytest.skip(f"infrastructure unavailable: {error}")


def _provide(provide: Callable[[Path], Provided], logs: Path) -> Provided:
    try:
        return provide(logs)
    except InfrastructureUnavailable as error:
        missing = error
    _unavailable(missing)  # outside the except block: the report shows the reason, not a chained traceback


@pytest.fixture(scope="session")
def devstack_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the stack's processes log: ``$DEVSTACK_LOG_DIR`` (CI keeps it) or a pytest temp folder."""
    return log_dir(tmp_path_factory.mktemp("devstack-logs"))


@pytest.fixture(scope="session")
def kafka_bootstrap(devstack_log_dir: Path) -> Iterator[str]:
    """Bootstrap servers of a broker with every topic of the stack (env, container or local Kafka)."""
    with _provide(provide_kafka, devstack_log_dir) as kafka:
        yield kafka.address


@pytest.fixture(scope="session")
def mongodb_url(devstack_log_dir: Path) -> Iterator[str]:
    """URL of a MongoDB-wire store (env, container or local ``secantusd-py``)."""
    with _provide(provide_store, devstack_log_dir) as store:
        yield store.address


@pytest.fixture(scope="session")
def smtp_catcher() -> Iterator[MailCatcher]:
    """An in-process SMTP server keeping every message, with its HTTP UI/API on ``http_url``."""
    from devstack.mailcatcher import MailCatcher

    with MailCatcher(http_port=0) as catcher:
        yield catcher


@pytest.fixture
def mailbox(smtp_catcher: MailCatcher) -> MailCatcher:
    """``smtp_catcher`` emptied and accepting everything, for one test."""
    smtp_catcher.clear()
    smtp_catcher.accept()
    return smtp_catcher


@pytest.fixture
def mongodb_database(request: pytest.FixtureRequest, mongodb_url: str) -> Iterator[str]:
    """A database name no other test uses; dropped afterwards."""
    from pymongo import MongoClient

    stem = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name)[: _DATABASE_NAME_MAX - 10].strip("_")
    name = f"t_{stem}_{uuid.uuid4().hex[:8]}"
    yield name
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    finally:
        client.close()


@pytest.fixture
def mongo_db(mongodb_url: str, mongodb_database: str) -> Iterator[Database[dict[str, Any]]]:
    """A pymongo ``Database`` on ``mongodb_database``."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(
        mongodb_url, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    try:
        yield client[mongodb_database]
    finally:
        client.close()


@pytest.fixture(scope="session")
def stack_secrets() -> StackSecrets:
    """This run's JWT secret, credentials key and connector key pair (``.jwt(account)``, ``.seal(text)``)."""
    return StackSecrets.generate()


@dataclass(frozen=True)
class RunningSandbox:
    """The fake processors: where they answer, their sample credentials and their process."""

    endpoints: SandboxEndpoints
    credentials: SampleCredentials
    process: ManagedProcess


@pytest.fixture(scope="session")
def sandbox_processors(devstack_log_dir: Path) -> Iterator[RunningSandbox]:
    """``python -m sandbox`` on a free port, shared by the session."""
    from devstack.processes import ManagedProcess
    from devstack.sandbox import SampleCredentials, SandboxLauncher

    launcher = SandboxLauncher.from_env()
    ports = launcher.allocate_ports()
    process = ManagedProcess(launcher.spec(ports), devstack_log_dir / "sandbox.log").start()
    try:
        yield RunningSandbox(launcher.endpoints(ports), SampleCredentials(), process)
    finally:
        process.stop()


@pytest.fixture
def stack_settings(  # noqa: PLR0917 (pytest passes fixtures by name)
    kafka_bootstrap: str,
    mongodb_url: str,
    mongodb_database: str,
    smtp_catcher: MailCatcher,
    stack_secrets: StackSecrets,
    sandbox_processors: RunningSandbox,
) -> StackSettings:
    """The services' settings for this test: shared broker, store and SMTP; its own database and ports."""
    return StackSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        mongodb_url=mongodb_url,
        mongodb_database=mongodb_database,
        smtp_host=smtp_catcher.host,
        smtp_port=smtp_catcher.smtp_port,
        secrets=stack_secrets,
        sandbox=sandbox_processors.endpoints,
        credentials=sandbox_processors.credentials,
    )


class ServiceEnv(Protocol):
    def __call__(self, service: str, **overrides: str) -> dict[str, str]: ...


@pytest.fixture
def service_env(stack_settings: StackSettings) -> ServiceEnv:
    """``service_env("connector", SOME_VAR="x")``: the full environment that service is started with."""
    return stack_settings.service_env


class RunServices(Protocol):
    def __call__(
        self,
        *services: str,
        env: Mapping[str, Mapping[str, str]] | None = None,
        settings: StackSettings | None = None,
        wait: bool = True,
    ) -> ServiceStack: ...


@pytest.fixture
def run_services(
    request: pytest.FixtureRequest, stack_settings: StackSettings, devstack_log_dir: Path
) -> Iterator[RunServices]:
    """Start services as processes (all three by default) against ``stack_settings``; stopped after the test.

    ``stack = run_services()``; ``stack.url("connector", "/v1/...")``, ``stack.jwt(account)``,
    ``stack.kill("importer")``, ``stack.restart("importer")``, ``stack["notifier"].log_tail()``.
    """
    from devstack.stack import ServiceStack

    stacks: list[ServiceStack] = []
    test_logs = devstack_log_dir / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def run(
        *services: str,
        env: Mapping[str, Mapping[str, str]] | None = None,
        settings: StackSettings | None = None,
        wait: bool = True,
    ) -> ServiceStack:
        stack = ServiceStack(settings or stack_settings, test_logs)
        stacks.append(stack)
        return stack.start(services or SERVICES, env=env, wait=wait)

    yield run
    for stack in reversed(stacks):
        stack.stop()


class CollectEvents(Protocol):
    async def __call__(self, topics: str | Sequence[str], *, start_at: StartAt = "now") -> TopicCollector: ...


@pytest_asyncio.fixture
async def kafka_events(kafka_bootstrap: str) -> AsyncIterator[CollectEvents]:
    """``imports = await kafka_events("imports.v1")`` then ``await imports.wait_for_type("ImportCompleted")``.

    Reading starts at the end as of the call (``start_at="beginning"`` or a datetime otherwise).
    """
    from devstack.events import TopicCollector

    collectors: list[TopicCollector] = []

    async def collect(topics: str | Sequence[str], *, start_at: StartAt = "now") -> TopicCollector:
        collector = await TopicCollector(kafka_bootstrap, topics, start_at=start_at).start()
        collectors.append(collector)
        return collector

    yield collect
    for collector in collectors:
        await collector.stop()
