"""What the stack would start in Docker: the containers built (not started) and their start-up steps
run against a container that records what is done to it instead of reaching a Docker engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from devstack.errors import InfrastructureUnavailable
from devstack.versions import KAFKA_IMAGE, KAFKA_VERSION, MAILPIT_IMAGE, MONGODB_IMAGE
from pymongo.uri_parser import parse_uri
from testcontainers.core.container import BytesExecResult, DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from devstack import containers, infra
from devstack.kafka import BROKER_SETTINGS

#: An API version given up front: building the container then asks no Docker engine for one.
OFFLINE: dict[str, Any] = {"docker_client_kw": {"version": "1.44"}}
HOST, MAPPED_PORT = "198.51.100.7", 49153


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Docker's part of starting a container replaced by a record of what was asked of it."""
    calls: list[tuple[str, Any]] = []

    def start(self: DockerContainer) -> DockerContainer:
        calls.append(("start", self.image))
        return self

    monkeypatch.setattr(DockerContainer, "start", start)
    monkeypatch.setattr(DockerContainer, "stop", lambda self, *a, **k: calls.append(("stop", self.image)))
    monkeypatch.setattr(DockerContainer, "get_container_host_ip", lambda self: HOST)
    monkeypatch.setattr(DockerContainer, "get_exposed_port", lambda self, port: MAPPED_PORT)
    monkeypatch.setattr(
        DockerContainer,
        "copy_into_container",
        lambda self, data, path, mode=0o644: calls.append(("copy", (path, data.decode()))),
    )
    monkeypatch.setattr(
        LogMessageWaitStrategy, "wait_until_ready", lambda self, c: calls.append(("logs", c.image))
    )
    return calls


# --- Kafka ---------------------------------------------------------------------------------------


def test_kafka_runs_the_official_image_of_the_local_brokers_release() -> None:
    kafka = containers.KafkaContainer(**OFFLINE)

    assert kafka.image == KAFKA_IMAGE == f"apache/kafka:{KAFKA_VERSION}"
    assert str(containers.KAFKA_PORT) in {str(p).split("/")[0] for p in kafka.ports}


def test_kafka_is_one_kraft_node_with_the_local_brokers_settings() -> None:
    env = containers.KafkaContainer(**OFFLINE).env

    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_NODE_ID"] == "1"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@localhost:{containers.KAFKA_CONTROLLER_PORT}"
    assert env["CLUSTER_ID"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    for setting, value in BROKER_SETTINGS.items():
        assert env[containers.kafka_env_name(setting)] == value, setting
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


@pytest.mark.parametrize(
    ("setting", "variable"),
    [
        ("auto.create.topics.enable", "KAFKA_AUTO_CREATE_TOPICS_ENABLE"),
        ("log.cleaner.backoff.ms", "KAFKA_LOG_CLEANER_BACKOFF_MS"),
        ("a.b_c", "KAFKA_A_B__C"),
        ("a-b.c", "KAFKA_A___B_C"),
    ],
)
def test_a_broker_setting_becomes_the_images_variable(setting: str, variable: str) -> None:
    assert containers.kafka_env_name(setting) == variable


def test_kafka_advertises_the_host_and_the_mapped_port_once_started(no_engine: list[tuple[str, Any]]) -> None:
    kafka = containers.KafkaContainer(**OFFLINE)
    script_path = containers.KAFKA_START_SCRIPT
    assert kafka._command == [
        "sh",
        "-c",
        f"while [ ! -f {script_path} ]; do sleep 0.1; done; exec sh {script_path}",
    ]

    kafka.start()

    assert [name for name, _ in no_engine] == ["start", "copy", "logs"]
    path, script = no_engine[1][1]
    assert path == containers.KAFKA_START_SCRIPT
    assert f"KAFKA_ADVERTISED_LISTENERS=INTERNAL://localhost:19092,EXTERNAL://{HOST}:{MAPPED_PORT}" in script
    assert script.rstrip().endswith(f"exec {containers.KAFKA_IMAGE_RUN}")
    assert kafka.bootstrap_servers() == f"{HOST}:{MAPPED_PORT}"


# --- MongoDB -------------------------------------------------------------------------------------


def test_mongodb_runs_as_the_one_node_replica_set_rs0() -> None:
    mongodb = containers.MongoReplicaSetContainer(**OFFLINE)

    assert mongodb.image == MONGODB_IMAGE
    assert mongodb._command is not None
    command = list(mongodb._command)
    assert command[0] == "mongod"
    assert command[command.index("--replSet") + 1] == "rs0"
    assert "--bind_ip_all" in command
    assert not {"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"} & set(mongodb.env)


def test_mongodb_is_initiated_until_it_is_the_primary(
    no_engine: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([BytesExecResult(1, b"not primary yet"), BytesExecResult(0, b"")])
    executed: list[Any] = []

    def run(self: DockerContainer, command: Any) -> BytesExecResult:
        executed.append(command)
        return next(answers)

    monkeypatch.setattr(DockerContainer, "exec", run)
    monkeypatch.setattr(containers, "_INITIATE_POLL_S", 0.0)

    mongodb = containers.MongoReplicaSetContainer(**OFFLINE).start()

    assert len(executed) == 2
    assert executed[0][:3] == ["mongosh", "--quiet", "--eval"]
    script = executed[0][3]
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]})" in script
    assert "isWritablePrimary" in script
    url = parse_uri(mongodb.connection_url())
    assert url["nodelist"] == [(HOST, MAPPED_PORT)]
    assert url["options"]["replicaSet"] == "rs0"
    assert url["options"]["directConnection"] is True


def test_a_replica_set_without_a_primary_is_reported(
    no_engine: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DockerContainer, "exec", lambda self, cmd: BytesExecResult(1, b"no primary"))
    monkeypatch.setattr(containers, "START_TIMEOUT_S", 0)

    with pytest.raises(InfrastructureUnavailable, match=r"rs0 has no primary.*no primary"):
        containers.MongoReplicaSetContainer(**OFFLINE).start()


# --- Mailpit -------------------------------------------------------------------------------------


def test_mailpit_takes_plain_smtp_and_shows_the_mail_on_the_web() -> None:
    mailpit = containers.MailpitContainer(**OFFLINE)

    assert mailpit.image == MAILPIT_IMAGE
    assert mailpit.env == dict(containers.MAILPIT_ENVIRONMENT)
    assert {str(p).split("/")[0] for p in mailpit.ports} == {"1025", "8025"}


# --- Choosing containers -------------------------------------------------------------------------


class _OfflineMongo(containers.MongoReplicaSetContainer):
    def __init__(self, image: str) -> None:
        super().__init__(image, **OFFLINE)


class _OfflineMailpit(containers.MailpitContainer):
    def __init__(self, image: str) -> None:
        super().__init__(image, **OFFLINE)


def test_with_docker_the_store_is_the_replica_set_container(
    no_engine: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(infra, "docker_available", lambda: True)
    monkeypatch.setattr(containers, "MongoReplicaSetContainer", _OfflineMongo)
    monkeypatch.setattr(DockerContainer, "exec", lambda self, cmd: BytesExecResult(0, b""))

    with infra.provide_store(tmp_path, env={}) as store:
        assert store.origin == "container"
        assert store.address == f"mongodb://{HOST}:{MAPPED_PORT}/?replicaSet=rs0&directConnection=true"

    assert no_engine[-1] == ("stop", MONGODB_IMAGE)


def test_with_docker_the_mail_catcher_is_mailpit(
    no_engine: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infra, "docker_available", lambda: True)
    monkeypatch.setattr(containers, "MailpitContainer", _OfflineMailpit)

    def no_local_catcher() -> infra.ProvidedMail:
        raise AssertionError("the local catcher is for machines without Docker")

    mail = infra.provide_mail(no_local_catcher)

    assert (mail.origin, mail.address) == ("container", f"http://{HOST}:{MAPPED_PORT}")
    assert (mail.smtp_host, mail.smtp_port) == (HOST, MAPPED_PORT)


def test_without_docker_the_local_mail_catcher_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infra, "docker_available", lambda: False)
    local = infra.ProvidedMail("http://127.0.0.1:1080", "local", lambda: None, "127.0.0.1", 1025)

    assert infra.provide_mail(lambda: local) is local


def test_a_container_that_does_not_start_is_reported_and_removed(
    no_engine: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(self: DockerContainer) -> DockerContainer:
        raise RuntimeError("pull access denied")

    monkeypatch.setattr(infra, "docker_available", lambda: True)
    monkeypatch.setattr(containers, "MongoReplicaSetContainer", _OfflineMongo)
    monkeypatch.setattr(DockerContainer, "start", refuse)

    with pytest.raises(InfrastructureUnavailable, match="MongoDB container did not start: pull access"):
        infra.provide_store(tmp_path, env={})
    assert no_engine == [("stop", MONGODB_IMAGE)]
