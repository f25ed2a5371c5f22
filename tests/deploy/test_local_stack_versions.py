"""One local stack: compose, scripts/dev and devstack (its local Kafka and its containers) run the
versions the repository's .env names, and the containers are set up as compose sets up its services."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
from devstack.containers import replica_set_script

from devstack import containers, kafka, versions

from .deploy_kit import COMPOSE_FILE, REPO_ROOT, VERSIONS_FILE, compose_config

SCRIPTS_DEV: Final = REPO_ROOT / "scripts" / "dev"
KAFKA_POM: Final = REPO_ROOT / "devstack" / "kafka" / "pom.xml"
#: Files that run or fetch the stack's infrastructure: none may name a version of its own.
CONSUMERS: Final = (
    COMPOSE_FILE,
    SCRIPTS_DEV,
    KAFKA_POM,
    *sorted((REPO_ROOT / "devstack" / "src" / "devstack").glob("*.py")),
)
#: The compose broker's settings the containers' broker does not share, and why.
KAFKA_SETTINGS_OF_COMPOSE_ONLY: Final = {
    "KAFKA_ADVERTISED_LISTENERS",  # the container's host port is known once it runs
    "KAFKA_CONTROLLER_QUORUM_VOTERS",  # the same node, by its host name in the compose network
    "KAFKA_LOG_DIRS",  # compose keeps the data in a volume; a container's data is thrown away
    "KAFKA_AUTO_CREATE_TOPICS_ENABLE",  # tests may make their own topics on first use, as locally
}


@pytest.fixture(scope="module")
def declared() -> dict[str, str]:
    return versions.parse_versions(VERSIONS_FILE.read_text())


@pytest.fixture(scope="module")
def compose_services() -> dict[str, Any]:
    code, out, err = compose_config(COMPOSE_FILE, REPO_ROOT)
    assert code == 0, err
    services: dict[str, Any] = json.loads(out)["services"]
    return services


def test_the_env_file_names_each_version_once(declared: dict[str, str]) -> None:
    assert set(declared) == {"KAFKA_VERSION", "KAFKA_IMAGE", "MONGODB_IMAGE", "MAILPIT_IMAGE"}
    assert declared["KAFKA_IMAGE"] == f"apache/kafka:{declared['KAFKA_VERSION']}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", declared["KAFKA_VERSION"])
    assert re.fullmatch(r"mongo:\d+\.\d+(\.\d+)?", declared["MONGODB_IMAGE"])
    assert re.fullmatch(r"axllent/mailpit:v\d+\.\d+\.\d+", declared["MAILPIT_IMAGE"])


def test_compose_runs_the_images_of_the_env_file(
    declared: dict[str, str], compose_services: dict[str, Any]
) -> None:
    images = {name: service["image"] for name, service in compose_services.items()}

    assert images["kafka"] == images["kafka-topics"] == declared["KAFKA_IMAGE"]
    assert images["mongodb"] == declared["MONGODB_IMAGE"]
    assert images["mailpit"] == declared["MAILPIT_IMAGE"]


def test_devstack_runs_the_versions_of_the_env_file(declared: dict[str, str]) -> None:
    assert declared == {
        "KAFKA_VERSION": versions.KAFKA_VERSION,
        "KAFKA_IMAGE": versions.KAFKA_IMAGE,
        "MONGODB_IMAGE": versions.MONGODB_IMAGE,
        "MAILPIT_IMAGE": versions.MAILPIT_IMAGE,
    }
    assert kafka.kafka_libs_dir().parent.name == declared["KAFKA_VERSION"]
    offline: dict[str, Any] = {"docker_client_kw": {"version": "1.44"}}
    assert containers.KafkaContainer(**offline).image == declared["KAFKA_IMAGE"]
    assert containers.MongoReplicaSetContainer(**offline).image == declared["MONGODB_IMAGE"]
    assert containers.MailpitContainer(**offline).image == declared["MAILPIT_IMAGE"]


def test_the_kafka_jars_are_fetched_for_the_version_of_the_env_file(
    declared: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[list[str]] = []

    def mvn(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        asked.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "offline")

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", mvn)

    with pytest.raises(RuntimeError, match=f"could not fetch Kafka {re.escape(declared['KAFKA_VERSION'])}"):
        kafka.fetch_kafka_libs(tmp_path / "libs")

    assert f"-Dkafka.version={declared['KAFKA_VERSION']}" in asked[0]
    pom = KAFKA_POM.read_text()
    assert "<kafka.version>" not in pom  # no default of its own: the release always comes from .env
    assert pom.count("<version>${kafka.version}</version>") == 2


def test_scripts_dev_reads_the_kafka_version_from_the_env_file(declared: dict[str, str]) -> None:
    line = next(line for line in SCRIPTS_DEV.read_text().splitlines() if line.startswith("kafka_version="))

    result = subprocess.run(
        ["bash", "-c", f'{line}\nprintf "%s" "$kafka_version"'],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )

    assert result.stdout == declared["KAFKA_VERSION"]


@pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_file_of_the_stack_names_a_version_of_its_own(declared: dict[str, str], consumer: Path) -> None:
    text = consumer.read_text()

    assert [value for value in declared.values() if value in text] == []
    assert not re.search(r"mongo:\d|apache/kafka:\d|mailpit:v\d|cp-kafka", text)


def test_the_kafka_container_is_set_up_as_composes_broker(compose_services: dict[str, Any]) -> None:
    compose_env = {k: str(v) for k, v in compose_services["kafka"]["environment"].items()}
    container_env = containers.kafka_environment()

    shared = set(compose_env) - KAFKA_SETTINGS_OF_COMPOSE_ONLY
    assert {name: container_env.get(name) for name in shared} == {name: compose_env[name] for name in shared}


def test_the_mongodb_container_is_composes_replica_set(compose_services: dict[str, Any]) -> None:
    mongodb = compose_services["mongodb"]
    command = mongodb["command"]
    test = mongodb["healthcheck"]["test"]

    assert command[command.index("--replSet") + 1] == containers.REPLICA_SET
    assert test[-1] == replica_set_script("mongodb:27017")
    assert "replicaSet=rs0" in compose_services["connector"]["environment"]["MONGODB_URL"]


def test_the_mailpit_container_is_set_up_as_composes(compose_services: dict[str, Any]) -> None:
    assert compose_services["mailpit"]["environment"] == dict(containers.MAILPIT_ENVIRONMENT)
