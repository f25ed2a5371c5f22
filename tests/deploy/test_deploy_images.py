"""The service images: structural rules of the one service Dockerfile built for each service (and of
the sandbox's), the build context, the locked contents."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .deploy_kit import (
    GPL_TEST_STORE,
    REPO_ROOT,
    SANDBOX_DOCKERFILE,
    SERVICE_DOCKERFILE,
    SERVICES,
    copy_sources,
    dockerfile_problems,
    dockerignore_excludes,
    service_build_args,
    service_guard,
)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_service_dockerfile_built_for_each_service_follows_the_image_rules(name: str) -> None:
    text = SERVICE_DOCKERFILE.read_text()

    assert dockerfile_problems(text, name, SERVICES[name].port, build_args=service_build_args(name)) == []


def test_the_service_dockerfile_builds_only_the_services_each_on_its_port() -> None:
    assert service_guard(SERVICE_DOCKERFILE.read_text()) == {
        f"{name}:{facts.port}" for name, facts in SERVICES.items()
    }


def test_no_service_keeps_a_dockerfile_of_its_own() -> None:
    assert sorted(REPO_ROOT.glob("services/*/Dockerfile")) == []


def test_sandbox_dockerfile_follows_the_image_rules() -> None:
    # The sandbox's routes are its own: its health check only needs the port open.
    assert (
        dockerfile_problems(
            SANDBOX_DOCKERFILE.read_text(), "sandbox", 8100, health_path=None, extra_cmd_args=True
        )
        == []
    )


def _without_line(text: str, line: str, stage: str) -> str:
    """``text`` without ``line`` in the stage named ``stage`` (``AS <stage>``)."""
    head, marker, tail = text.partition(f" AS {stage}\n")
    return head + marker + tail.replace(f"{line}\n", "", 1)


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda t: t.replace("USER 10001:10001\n", ""), "sets no USER"),
        (lambda t: t.replace("USER 10001:10001", "USER app"), "not numeric"),
        (lambda t: t.replace("USER 10001:10001", "USER 0"), "root"),
        (lambda t: t.replace(" --no-dev", ""), "without --no-dev"),
        (lambda t: t.replace("${SERVICE}\n", "${SERVICE} --all-groups\n"), "dependency group"),
        (lambda t: t.replace("uv sync --frozen", "uv sync --frozen --group dev"), "dependency group"),
        (lambda t: t + "RUN pip install secantusdb\n", GPL_TEST_STORE),
        (lambda t: t.split("FROM ${PYTHON_IMAGE} AS runtime")[0].replace("AS builder", ""), "EXPOSE"),
        (lambda t: t[t.index("FROM ${PYTHON_IMAGE} AS runtime") :], "multi-stage"),
        (lambda t: t.replace("/livez", "/readyz"), "HEALTHCHECK must hit /livez"),
        (lambda t: t.replace('CMD ["python", "-c"', 'CMD ["curl", "-c"'), "curl"),
        (lambda t: t.replace('exec python -m \\"$SERVICE\\"', "python -m connector"), "CMD is not"),
        # The shell form: /bin/sh stays PID 1 and the service never gets SIGTERM.
        (lambda t: re.sub(r"^CMD \[.*\]$", "CMD python -m connector", t, flags=re.M), "CMD is not"),
        # The base image by tag only: a rebuild may get another image.
        (lambda t: t.replace("@sha256:", "-latest:"), "not pinned by digest"),
        (lambda t: t.replace("org.opencontainers.image.revision=", "revision="), "image.revision label"),
        (lambda t: t.replace('org.opencontainers.image.source="${SOURCE}"', 'x="y"'), "image.source label"),
        # A build argument a stage forgot to declare expands to nothing there.
        (lambda t: _without_line(t, "ARG SERVICE", "builder"), "without --package connector"),
        (lambda t: _without_line(t, "ARG HTTP_PORT", "runtime"), "does not EXPOSE 8000"),
        (lambda t: _without_line(t, "ARG SERVICE", "runtime"), "CMD is not"),
        (lambda t: t.replace("HTTP_PORT=${HTTP_PORT}", "HTTP_PORT=8080"), "HTTP_PORT is '8080', not 8000"),
    ],
)
def test_a_broken_dockerfile_is_caught(mutation: Callable[[str], str], expected: str) -> None:
    broken = mutation(SERVICE_DOCKERFILE.read_text())

    problems = dockerfile_problems(broken, "connector", 8000, build_args=service_build_args("connector"))

    assert any(expected in problem for problem in problems), problems


def test_a_build_without_the_service_argument_is_caught() -> None:
    problems = dockerfile_problems(SERVICE_DOCKERFILE.read_text(), "connector", 8000)

    assert any("without --package connector" in problem for problem in problems), problems


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_locked_image_contents_hold_no_dev_dependency(name: str) -> None:
    """What `uv sync --frozen --no-dev --package NAME` installs, read from uv.lock without a network."""
    result = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--package", name, "--no-hashes", "--no-header"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "UV_OFFLINE": "1"},
    )
    packages = {
        line.split("==")[0].split(" ")[0].strip().lower()
        for line in result.stdout.splitlines()
        if line and not line.startswith(("#", " "))
    }

    assert "fastapi" in packages  # the export really listed the service's dependencies
    assert packages.isdisjoint({GPL_TEST_STORE, "pytest", "testcontainers", "ruff", "mypy", "aiosmtpd"})


def _dockerignore() -> list[str]:
    return (REPO_ROOT / ".dockerignore").read_text().splitlines()


@pytest.mark.parametrize(
    ("dockerfile", "build_args"),
    [
        *((SERVICE_DOCKERFILE, service_build_args(name)) for name in sorted(SERVICES)),
        (SANDBOX_DOCKERFILE, {}),
    ],
    ids=[*sorted(SERVICES), "sandbox"],
)
def test_everything_a_dockerfile_copies_exists_and_is_in_the_build_context(
    dockerfile: Path, build_args: dict[str, str]
) -> None:
    sources = copy_sources(dockerfile.read_text(), build_args)
    assert sources, f"{dockerfile} copies nothing from the build context"
    for source in sources:
        path = REPO_ROOT / source
        assert path.exists(), f"{dockerfile}: COPY {source} does not exist"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        kept = [f for f in files if not dockerignore_excludes(_dockerignore(), str(f.relative_to(REPO_ROOT)))]
        assert kept, f"{dockerfile}: .dockerignore leaves out everything of COPY {source}"
        if path.is_file():
            assert kept == files, f"{dockerfile}: .dockerignore leaves out {source}"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".cache/uv/x",
        "deploy/compose.env",
        "deploy/k8s/base/kustomization.yaml",
        "tests/deploy/deploy_kit.py",
        "services/importer/tests/unit/test_plan.py",
        "services/importer/src/importer/__pycache__/app.cpython-311.pyc",
        "services/connector/.env",
        "docs/operations.md",
    ],
)
def test_the_build_context_leaves_out_local_state_tests_and_secrets(path: str) -> None:
    assert dockerignore_excludes(_dockerignore(), path)


@pytest.mark.parametrize(
    "path",
    [
        "uv.lock",
        "pyproject.toml",
        "services/notifier/pyproject.toml",
        "shared/contracts/src/contracts/topics.py",
    ],
)
def test_the_build_context_keeps_what_the_images_need(path: str) -> None:
    assert not dockerignore_excludes(_dockerignore(), path)


def test_the_dockerignore_matcher_follows_dockers_rules() -> None:
    # The last matching pattern wins, a parent directory's match counts, `**` spans directories.
    assert not dockerignore_excludes([*_dockerignore(), "!.venv/"], ".venv/bin/python")
    assert dockerignore_excludes(["*", "!services/*/src/"], "services/a/tests/x.py")
    assert not dockerignore_excludes(["*", "!services/*/src/"], "services/a/src/a/x.py")
    assert dockerignore_excludes(["**/tests"], "a/b/tests/c/d.py")
    assert not dockerignore_excludes(["**/tests"], "a/b/testsuite.py")
