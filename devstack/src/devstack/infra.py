"""Choosing the broker and the store: given by the environment, else Docker containers, else local processes.

- ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URL`` set: used as they are (topics are still created if missing).
- else, when a Docker engine answers: ``testcontainers`` Kafka and MongoDB
  (``DEVSTACK_CONTAINERS=0`` skips this).
- else: a local Kafka 4.1 (``devstack.kafka``) and ``secantusd-py`` (``devstack.store``).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

from devstack.errors import InfrastructureUnavailable
from devstack.kafka import LocalKafka
from devstack.store import LocalStore
from devstack.topology import ensure_topics

Origin = Literal["environment", "container", "local"]

CONTAINERS_ENV: Final = "DEVSTACK_CONTAINERS"
KAFKA_IMAGE: Final = "confluentinc/cp-kafka:7.6.0"
MONGODB_IMAGE: Final = "mongo:7.0"
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


def _nothing() -> None:
    return None


def _start_container(container: Any, address: Callable[[Any], str], origin_name: str) -> Provided:
    try:
        container.start()
    except Exception as error:
        raise InfrastructureUnavailable(
            f"Docker answers but the {origin_name} container did not start: {error}"
        ) from error
    return Provided(address(container), "container", container.stop)


def provide_kafka(log_dir: Path, env: Mapping[str, str] | None = None) -> Provided:
    """A broker with every topic of the stack (``Provided.address`` is the bootstrap servers list)."""
    environ = env if env is not None else os.environ
    if configured := environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        ensure_topics(configured)
        return Provided(configured, "environment", _nothing)
    if docker_available():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:
            from testcontainers.kafka import KafkaContainer
        provided = _start_container(
            KafkaContainer(KAFKA_IMAGE).with_kraft(), lambda c: str(c.get_bootstrap_server()), "Kafka"
        )
        ensure_topics(provided.address)
        return provided
    kafka = LocalKafka(log_dir / "kafka.log").start()
    return Provided(kafka.bootstrap_servers, "local", kafka.stop)


def provide_store(log_dir: Path, env: Mapping[str, str] | None = None) -> Provided:
    """A MongoDB-wire store (``Provided.address`` is its URL)."""
    environ = env if env is not None else os.environ
    if configured := environ.get("MONGODB_URL"):
        return Provided(configured, "environment", _nothing)
    if docker_available():
        try:
            from testcontainers.community.mongodb import MongoDbContainer
        except ImportError:
            from testcontainers.mongodb import MongoDbContainer
        return _start_container(
            MongoDbContainer(MONGODB_IMAGE), lambda c: str(c.get_connection_url()), "MongoDB"
        )
    store = LocalStore(log_dir / "store.log").start()
    return Provided(store.url, "local", store.stop)
