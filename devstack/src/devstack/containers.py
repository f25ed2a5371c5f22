"""The stack's infrastructure as Docker containers (testcontainers), when a Docker engine answers.

The same images as docker-compose.yml, named in the repository's ``.env`` (``devstack.versions``):

- Kafka: the official ``apache/kafka`` image in KRaft mode, one node, with the local broker's
  settings (``devstack.kafka.BROKER_SETTINGS``); its listener for the host is advertised with the
  host port Docker mapped, known only once the container runs (its command waits for a start script
  written then).
- MongoDB: a one-node replica set ``rs0`` (``mongod --replSet rs0``, then ``rs.initiate``) so
  transactions and change streams work; the URL says ``replicaSet=rs0&directConnection=true``, the
  member's host name inside the container being no address for the host.
- Mailpit: SMTP without login or TLS, the web UI and API beside it, as compose runs it.

Building a container contacts no Docker engine when ``docker_client_kw`` names an API version; the
tests do so to check what would be started.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Final, Self

from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

from devstack.errors import InfrastructureUnavailable
from devstack.kafka import BROKER_SETTINGS
from devstack.versions import KAFKA_IMAGE, MAILPIT_IMAGE, MONGODB_IMAGE

START_TIMEOUT_S: Final = 120

# --- Kafka ---------------------------------------------------------------------------------------

#: The listener the host's clients use, advertised as the host and the port Docker mapped.
KAFKA_PORT: Final = 9092
#: The broker's own listener and its controller's, inside the container only.
KAFKA_INTERNAL_PORT: Final = 19092
KAFKA_CONTROLLER_PORT: Final = 9093
KAFKA_START_SCRIPT: Final = "/tmp/devstack-kafka-start.sh"  # noqa: S108 (inside the container)
#: The official image's start command: it turns the ``KAFKA_*`` variables into server.properties,
#: formats the storage with ``CLUSTER_ID`` and starts the broker.
KAFKA_IMAGE_RUN: Final = "/etc/kafka/docker/run"
KAFKA_READY_LOG: Final = re.compile(r"Kafka Server started")
KAFKA_CLUSTER_ID: Final = "R49ASGK8Viebt_Cyzy-C0Q"


def kafka_env_name(setting: str) -> str:
    """The variable of the official image that sets a broker setting (``a.b_c-d`` → ``KAFKA_A_B__C___D``)."""
    return "KAFKA_" + setting.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def kafka_environment() -> dict[str, str]:
    """Everything but the advertised listeners, which the start script adds once the port is known."""
    return {
        "CLUSTER_ID": KAFKA_CLUSTER_ID,
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@localhost:{KAFKA_CONTROLLER_PORT}",
        "KAFKA_LISTENERS": (
            f"INTERNAL://:{KAFKA_INTERNAL_PORT},EXTERNAL://:{KAFKA_PORT},CONTROLLER://:{KAFKA_CONTROLLER_PORT}"
        ),
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "INTERNAL",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
        **{kafka_env_name(name): value for name, value in BROKER_SETTINGS.items()},
    }


class KafkaContainer(DockerContainer):
    """A one-node Apache Kafka (KRaft) from the image docker-compose.yml runs."""

    def __init__(self, image: str = KAFKA_IMAGE, **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        for name, value in kafka_environment().items():
            self.with_env(name, value)
        self.with_exposed_ports(KAFKA_PORT)
        self.with_command(
            [
                "sh",
                "-c",
                f"while [ ! -f {KAFKA_START_SCRIPT} ]; do sleep 0.1; done; exec sh {KAFKA_START_SCRIPT}",
            ]
        )

    @staticmethod
    def start_script(host: str, port: int) -> str:
        """What the container runs once started: the advertised listeners, then the image's own start."""
        advertised = f"INTERNAL://localhost:{KAFKA_INTERNAL_PORT},EXTERNAL://{host}:{port}"
        return f"export KAFKA_ADVERTISED_LISTENERS={advertised}\nexec {KAFKA_IMAGE_RUN}\n"

    def start(self) -> Self:
        super().start()
        script = self.start_script(self.get_container_host_ip(), self.get_exposed_port(KAFKA_PORT))
        self.copy_into_container(script.encode(), KAFKA_START_SCRIPT, 0o755)
        LogMessageWaitStrategy(KAFKA_READY_LOG).with_startup_timeout(START_TIMEOUT_S).wait_until_ready(self)
        return self

    def bootstrap_servers(self) -> str:
        return f"{self.get_container_host_ip()}:{self.get_exposed_port(KAFKA_PORT)}"


# --- MongoDB -------------------------------------------------------------------------------------

MONGODB_PORT: Final = 27017
REPLICA_SET: Final = "rs0"
MONGODB_READY_LOG: Final = re.compile(r"Waiting for connections", re.IGNORECASE)
_INITIATE_POLL_S: Final = 0.5


def replica_set_script(member_host: str) -> str:
    """mongosh code that initiates the one-node replica set if it is not yet, and exits 0 once this
    node is the writable primary (docker-compose.yml's healthcheck runs the same, for ``mongodb:27017``)."""
    return (
        "try { rs.status() } catch (e) { "
        f"rs.initiate({{_id: '{REPLICA_SET}', members: [{{_id: 0, host: '{member_host}'}}]}}) "
        "}; quit(db.hello().isWritablePrimary ? 0 : 1)"
    )


class MongoReplicaSetContainer(DockerContainer):
    """MongoDB as a one-node replica set, so transactions and change streams work as in production."""

    def __init__(self, image: str = MONGODB_IMAGE, **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        self.with_exposed_ports(MONGODB_PORT)
        self.with_command(["mongod", "--replSet", REPLICA_SET, "--bind_ip_all", "--port", str(MONGODB_PORT)])
        self.waiting_for(LogMessageWaitStrategy(MONGODB_READY_LOG).with_startup_timeout(START_TIMEOUT_S))

    def initiate_command(self) -> list[str]:
        return ["mongosh", "--quiet", "--eval", replica_set_script(f"localhost:{MONGODB_PORT}")]

    def start(self) -> Self:
        super().start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            result = self.exec(self.initiate_command())
            if result.exit_code == 0:
                return self
            if time.monotonic() > deadline:
                output = (result.output or b"").decode(errors="replace")
                raise InfrastructureUnavailable(
                    f"MongoDB's replica set {REPLICA_SET} has no primary after {START_TIMEOUT_S} s: {output}"
                )
            time.sleep(_INITIATE_POLL_S)

    def connection_url(self) -> str:
        host, port = self.get_container_host_ip(), self.get_exposed_port(MONGODB_PORT)
        return f"mongodb://{host}:{port}/?replicaSet={REPLICA_SET}&directConnection=true"


# --- Mailpit -------------------------------------------------------------------------------------

MAILPIT_SMTP_PORT: Final = 1025
MAILPIT_HTTP_PORT: Final = 8025
#: As docker-compose.yml's mailpit: any login (or none) over plain SMTP, as the notifier sends locally.
MAILPIT_ENVIRONMENT: Final[Mapping[str, str]] = {
    "MP_SMTP_AUTH_ACCEPT_ANY": "true",
    "MP_SMTP_AUTH_ALLOW_INSECURE": "true",
}


class MailpitContainer(DockerContainer):
    """Mailpit: catches every email on SMTP, shows them at ``web_url()`` (UI and ``/api/v1``)."""

    def __init__(self, image: str = MAILPIT_IMAGE, **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        for name, value in MAILPIT_ENVIRONMENT.items():
            self.with_env(name, value)
        self.with_exposed_ports(MAILPIT_SMTP_PORT, MAILPIT_HTTP_PORT)
        self.waiting_for(HttpWaitStrategy(MAILPIT_HTTP_PORT, "/readyz").with_startup_timeout(START_TIMEOUT_S))

    def smtp_host(self) -> str:
        return self.get_container_host_ip()

    def smtp_port(self) -> int:
        return self.get_exposed_port(MAILPIT_SMTP_PORT)

    def web_url(self) -> str:
        return f"http://{self.get_container_host_ip()}:{self.get_exposed_port(MAILPIT_HTTP_PORT)}"
