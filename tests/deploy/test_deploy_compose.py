"""The local Compose stack: compose-spec validation (compose-go, no daemon) and the stack's rules."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .deploy_kit import (
    COMPOSE_ENV,
    COMPOSE_FILE,
    COMPOSE_TOPICS,
    DEPLOY_DIR,
    K8S_DIR,
    REPO_ROOT,
    all_topics,
    compose_config,
    compose_problems,
    compose_topics,
    dev_secret_problems,
    read_env_file,
)


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    code, out, err = compose_config(COMPOSE_FILE, REPO_ROOT)
    assert code == 0, f"docker-compose.yml is not a valid Compose file:\n{err}"
    resolved: dict[str, Any] = json.loads(out)
    return resolved


def _broken_copy(tmp_path: Path, edit: Any) -> Path:
    """A copy of the stack in tmp_path with the Compose file edited; relative paths still resolve."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    edit(document)
    (tmp_path / "deploy").symlink_to(DEPLOY_DIR)
    (tmp_path / "services").symlink_to(REPO_ROOT / "services")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(document))
    return broken


def test_the_compose_file_is_valid_and_follows_the_stack_rules(project: dict[str, Any]) -> None:
    assert compose_problems(project) == []


def test_the_services_get_the_dev_secrets_from_compose_env(project: dict[str, Any]) -> None:
    dev_env = read_env_file(COMPOSE_ENV)
    for name in ("connector", "importer"):
        environment = project["services"][name]["environment"]
        assert environment["API_JWT_SECRET"] == dev_env["API_JWT_SECRET"]
        assert environment["CREDENTIALS_KEYS"] == dev_env["CREDENTIALS_KEYS"]


def test_the_dev_secrets_are_well_formed_and_obviously_fake() -> None:
    assert dev_secret_problems(read_env_file(COMPOSE_ENV)) == []


def test_a_real_looking_secret_is_caught() -> None:
    env = read_env_file(COMPOSE_ENV) | {
        "API_JWT_SECRET": "f3a9c1e7b2",
        "STRIPE_PLATFORM_SECRET_KEY": "sk_live_abc",
    }

    problems = dev_secret_problems(env)

    assert any("API_JWT_SECRET" in p for p in problems)
    assert any("live Stripe key" in p for p in problems)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # Compose-spec errors, reported by compose-go itself.
        (
            lambda d: d["services"]["importer"]["depends_on"].update(
                {"zookeeper": {"condition": "service_healthy"}}
            ),
            "zookeeper",
        ),
        (lambda d: d["services"]["mongodb"].update({"healthchek": {"test": ["CMD", "true"]}}), "healthchek"),
        (lambda d: d["services"]["kafka"].update({"ports": "9092"}), "ports"),
    ],
)
def test_an_invalid_compose_file_is_rejected(tmp_path: Path, edit: Any, expected: str) -> None:
    code, _, err = compose_config(_broken_copy(tmp_path, edit), tmp_path)

    assert code != 0
    assert expected in err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["services"]["mongodb"].pop("healthcheck"),
            "mongodb to be healthy, which has no healthcheck",
        ),
        (
            lambda d: d["services"]["notifier"]["depends_on"].pop("kafka-topics"),
            "notifier does not wait for the topics",
        ),
        (
            lambda d: d["services"]["connector"]["environment"].pop("MONGODB_URL"),
            "connector lacks MONGODB_URL",
        ),
        (lambda d: d["services"]["importer"]["ports"].append("8101:8001"), "beyond localhost"),
        (
            lambda d: [d["services"].pop("mailpit"), d["services"]["notifier"]["depends_on"].pop("mailpit")],
            "'mailpit' is missing",
        ),
        (
            lambda d: d["services"]["mongodb"].update({"image": "mongo:6.0"}),
            "mongodb runs mongo:6.0, not MONGODB_IMAGE of .env",
        ),
        (
            lambda d: d["services"]["kafka-topics"].update({"image": "apache/kafka:3.9.0"}),
            "kafka-topics runs apache/kafka:3.9.0, not KAFKA_IMAGE of .env",
        ),
        (
            lambda d: d["services"]["mongodb"].update({"command": ["mongod", "--bind_ip_all"]}),
            "mongodb must run as a replica set",
        ),
        (
            lambda d: d["services"]["notifier"]["build"]["args"].update({"SERVICE": "importer"}),
            "notifier is built with SERVICE='importer'",
        ),
        (
            lambda d: d["services"]["importer"]["build"].update(
                {"dockerfile": "services/importer/Dockerfile"}
            ),
            "importer is not built from deploy/Dockerfile",
        ),
    ],
)
def test_a_compose_file_breaking_the_stack_rules_is_caught(tmp_path: Path, edit: Any, expected: str) -> None:
    code, out, err = compose_config(_broken_copy(tmp_path, edit), tmp_path)
    assert code == 0, err

    problems = compose_problems(json.loads(out))

    assert any(expected in p for p in problems), problems


def test_the_local_topics_are_the_clusters_topics() -> None:
    local = compose_topics(COMPOSE_TOPICS.read_text())
    cluster = {
        doc["spec"]["topicName"]: doc["spec"]
        for doc in yaml.safe_load_all((K8S_DIR / "base" / "kafka" / "topics.yaml").read_text())
    }

    assert set(local) == set(cluster) == all_topics()
    for name, spec in cluster.items():
        assert local[name].partitions == spec["partitions"], name
        assert local[name].config.get("cleanup.policy") == spec["config"].get("cleanup.policy"), name


def test_the_topic_script_creates_every_listed_topic(tmp_path: Path) -> None:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX shell")
    calls = tmp_path / "calls"
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)

    subprocess.run(
        ["sh", str(DEPLOY_DIR / "compose" / "create-topics.sh")],
        env={"KAFKA_TOPICS_CMD": str(fake), "TOPICS_FILE": str(COMPOSE_TOPICS), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )

    created = [line.split() for line in calls.read_text().splitlines() if "--create" in line]
    listed = compose_topics(COMPOSE_TOPICS.read_text())
    assert len(created) == len(listed)
    for args in created:
        topic = listed[args[args.index("--topic") + 1]]
        assert args[args.index("--partitions") + 1] == str(topic.partitions)
        assert "--if-not-exists" in args
        configs = {args[i + 1] for i, a in enumerate(args) if a == "--config"}
        assert configs == {f"{k}={v}" for k, v in topic.config.items()}
