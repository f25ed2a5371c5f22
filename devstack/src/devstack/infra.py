"""Choosing the broker, the store and the mail catcher: given by the environment, else Docker
containers, else local processes.

- ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URL`` set: used as they are (topics are still created if missing).
- else, when a Docker engine answers: containers of the images docker-compose.yml runs
  (``devstack.containers``: ``apache/kafka`` in KRaft mode, MongoDB as the one-node replica set
  ``rs0``, Mailpit; versions from the repository's ``.env``). ``DEVSTACK_CONTAINERS=0`` skips this.
- else: a local Kafka from Maven jars of the same release (``devstack.kafka``), ``secantusd-py``
  (``devstack.store``) and devstack's own mail catcher (``devstack.mailcatcher``, aiosmtpd).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Protocol, Self, TypeVar

from devstack.errors import InfrastructureUnavailable
from devstack.kafka import LocalKafka
from devstack.store import LocalStore
from devstack.topology import ensure_topics
from devstack.versions import KAFKA_IMAGE, MAILPIT_IMAGE, MONGODB_IMAGE

Origin = Literal["environment", "container", "local"]

CONTAINERS_ENV: Final = "DEVSTACK_CONTAINERS"
_DOCKER_PING_TIMEOUT_S: Final = 3
_DOCKER_SOCKETS: Final = (
    "/var/run/docker.sock",
    "~/.docker/run/docker.sock",
    "~/.colima/default/docker.sock",
)


def in_ci(env: Mapping[str, str] | None = None) -> bool:
    """Whether we run in CI (``CI=true``): there a test lacking infrastructure fails instead of skipping."""
    return (env if env is not None else os.environ).get("CI", "").strip().lower() in ("1", "true", "yes")


@functools.cache
def docker_available() -> bool:
    """Whether a Docker engine answers (checked once, quickly: no socket and no ``DOCKER_HOST`` means no)."""
    if os.environ.get(CONTAINERS_ENV, "").strip().lower() in ("0", "false", "no"):
        return False
    has_socket = any(Path(p).expanduser().exists() for p in _DOCKER_SOCKETS)
    if not (os.environ.get("DOCKER_HOST") or has_socket):
        return False
    try:
        docker = importlib.import_module("docker")  # comes with testcontainers (dev group)
        client = docker.from_env(timeout=_DOCKER_PING_TIMEOUT_S)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class _Container(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


C = TypeVar("C", bound=_Container)


@dataclass
class Provided:
    """A broker or store the stack runs on: its address and how it was obtained; ``close()`` ends it."""

    address: str
    origin: Origin
    _close: Callable[[], None]

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class ProvidedMail(Provided):
    """A mail catcher: ``address`` is its web UI; the notifier sends to ``smtp_host``:``smtp_port``."""

    smtp_host: str
    smtp_port: int


def _nothing() -> None:
    return None


def _start_container(container: C, name: str) -> C:
    try:
        container.start()
    except Exception as error:
        with contextlib.suppress(Exception):
            container.stop()
        raise InfrastructureUnavailable(
            f"Docker answers but the {name} container did not start: {error}"
        ) from error
    return container


def provide_kafka(log_dir: Path, env: Mapping[str, str] | None = None) -> Provided:
    """A broker with every topic of the stack (``Provided.address`` is the bootstrap servers list)."""
    environ = env if env is not None else os.environ
    if configured := environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        ensure_topics(configured)
        return Provided(configured, "environment", _nothing)
    if docker_available():
        from devstack.containers import KafkaContainer

        kafka_container = _start_container(KafkaContainer(KAFKA_IMAGE), "Kafka")
        provided = Provided(kafka_container.bootstrap_servers(), "container", kafka_container.stop)
        try:
            ensure_topics(provided.address)
        except BaseException:
            provided.close()
            raise
        return provided
    kafka = LocalKafka(log_dir / "kafka.log").start()
    return Provided(kafka.bootstrap_servers, "local", kafka.stop)


def provide_store(log_dir: Path, env: Mapping[str, str] | None = None) -> Provided:
    """A MongoDB-wire store (``Provided.address`` is its URL)."""
    environ = env if env is not None else os.environ
    if configured := environ.get("MONGODB_URL"):
        return Provided(configured, "environment", _nothing)
    if docker_available():
        from devstack.containers import MongoReplicaSetContainer

        mongodb = _start_container(MongoReplicaSetContainer(MONGODB_IMAGE), "MongoDB")
        return Provided(mongodb.connection_url(), "container", mongodb.stop)
    store = LocalStore(log_dir / "store.log").start()
    return Provided(store.url, "local", store.stop)


def provide_mail(start_local: Callable[[], ProvidedMail]) -> ProvidedMail:
    """A mail catcher: Mailpit in a container when Docker answers, else what ``start_local`` starts
    (the run command's ``devstack.mailcatcher`` process)."""
    if docker_available():
        from devstack.containers import MailpitContainer

        mailpit = _start_container(MailpitContainer(MAILPIT_IMAGE), "Mailpit")
        return ProvidedMail(
            mailpit.web_url(), "container", mailpit.stop, mailpit.smtp_host(), mailpit.smtp_port()
        )
    return start_local()
