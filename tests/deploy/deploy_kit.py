"""Checks of the deployment files (Dockerfiles, Compose, Kubernetes) that the deploy tests share.

Each check returns a list of problems, empty when all is well, so a test can assert both that the
real files pass and that a deliberately broken copy is caught by the very same code.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml
from contracts.topics import BILLING_TOPICS, PUBLIC_TOPICS, dead_letter_topic
from devstack.metric_names import exposed_metrics, external
from devstack.versions import parse_versions
from kubernetes_validate.utils import SchemaNotFoundError

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEPLOY_DIR: Final = REPO_ROOT / "deploy"
K8S_DIR: Final = DEPLOY_DIR / "k8s"
SCHEMAS_DIR: Final = DEPLOY_DIR / "schemas"
API_DOCS_DIR: Final = REPO_ROOT / "docs" / "api"
TOOLS_BIN: Final = DEPLOY_DIR / "tools" / "bin"
INSTALL_SCRIPT: Final = DEPLOY_DIR / "tools" / "install.sh"
COMPOSE_FILE: Final = REPO_ROOT / "docker-compose.yml"
#: The versions of the local stack (Kafka, MongoDB, Mailpit), which compose interpolates.
VERSIONS_FILE: Final = REPO_ROOT / ".env"
COMPOSE_ENV: Final = DEPLOY_DIR / "compose.env"
COMPOSE_TOPICS: Final = DEPLOY_DIR / "compose" / "topics.txt"
OPERATIONS_GUIDE: Final = REPO_ROOT / "docs" / "operations.md"
#: Where an alert's runbook_url points: a heading of docs/operations.md, as the repository shows it.
RUNBOOK_BASE: Final = "https://github.com/billing-import/billing-import/blob/main/docs/operations.md#"
OVERLAYS: Final = ("dev", "prod")

# The Kubernetes version the built-in kinds are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION: Final = "1.32.0"

PAGE_REQUESTS: Final = "importer.page-requests.v1"
#: The importer's consumer group on the page requests: KEDA scales the importer on its lag.
PAGE_REQUESTS_GROUP: Final = "importer-page-requests"
GPL_TEST_STORE: Final = "secantusdb"


@dataclass(frozen=True)
class KafkaAccess:
    """What a service reads and writes on Kafka, as its AsyncAPI document (docs/api) says."""

    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    groups: tuple[str, ...]

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> KafkaAccess:
        """Each ``receive`` operation is a topic read in the group its Kafka binding names, each
        ``send`` one a topic written."""
        channels = document.get("channels", {})
        consumes: set[str] = set()
        produces: set[str] = set()
        groups: set[str] = set()
        for operation in document.get("operations", {}).values():
            address = channels[operation["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]
            if operation["action"] == "send":
                produces.add(address)
                continue
            consumes.add(address)
            group = operation.get("bindings", {}).get("kafka", {}).get("groupId", {}).get("enum", [])
            groups.update(group)
        return cls(tuple(sorted(consumes)), tuple(sorted(produces)), tuple(sorted(groups)))

    def acls(self) -> set[tuple[str, str, str]]:
        """The least ACLs: Read on each consumed topic and group, Write on each produced topic and on
        the dead-letter topic of each consumed one (every consumer dead-letters what keeps failing)."""
        needed = {("group", group, "Read") for group in self.groups}
        needed |= {("topic", topic, "Read") for topic in self.consumes}
        needed |= {("topic", topic, "Write") for topic in self.produces}
        needed |= {("topic", dead_letter_topic(topic), "Write") for topic in self.consumes}
        return needed


def kafka_access(service: str) -> KafkaAccess:
    """A service's Kafka access from its committed AsyncAPI document (a docs test keeps it current)."""
    return KafkaAccess.of(json.loads((API_DOCS_DIR / f"{service}.asyncapi.json").read_text()))


@dataclass(frozen=True)
class ServiceFacts:
    """What the deployment must know of a service: its port and secrets; its topics and consumer
    groups come from its AsyncAPI document (``kafka``)."""

    name: str
    port: int
    secrets: tuple[str, ...]

    @property
    def kafka(self) -> KafkaAccess:
        return kafka_access(self.name)


SERVICES: Final[Mapping[str, ServiceFacts]] = {
    facts.name: facts
    for facts in (
        ServiceFacts(
            "connector",
            port=8000,
            secrets=(
                "API_JWT_SECRET",
                "CREDENTIALS_KEYS",
                "CONNECTOR_PRIVATE_KEY",
                "STRIPE_PLATFORM_SECRET_KEY",
                "STRIPE_WEBHOOK_SECRET",
            ),
        ),
        ServiceFacts("importer", port=8001, secrets=("API_JWT_SECRET", "CREDENTIALS_KEYS")),
        ServiceFacts("notifier", port=8002, secrets=()),
    )
}

# Environment variables whose value is a secret: never a literal in a Kubernetes manifest.
SECRET_ENV: Final = frozenset(
    {
        "API_JWT_SECRET",
        "CREDENTIALS_KEYS",
        "CONNECTOR_PRIVATE_KEY",
        "STRIPE_PLATFORM_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "SMTP_PASSWORD",
        "MONGODB_URL",
        "KAFKA_SASL_PASSWORD",
    }
)

# Custom resources are validated against the schemas vendored in deploy/schemas/.
CRD_SCHEMAS: Final[Mapping[tuple[str, str], str]] = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): "kafka.strimzi.io_v1_kafkatopic.json",
    ("kafka.strimzi.io/v1", "KafkaUser"): "kafka.strimzi.io_v1_kafkauser.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_prometheusrule.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
}

Manifest = dict[str, Any]


def all_topics() -> set[str]:
    """Every topic the system needs: the SPEC's, the internal one and a DLQ per consumed topic."""
    consumed = {topic for facts in SERVICES.values() for topic in facts.kafka.consumes}
    produced = {topic for facts in SERVICES.values() for topic in facts.kafka.produces}
    return {*PUBLIC_TOPICS, *consumed, *produced, *(dead_letter_topic(topic) for topic in consumed)}


# --- tools ---------------------------------------------------------------------------------------


def tool_missing(message: str) -> None:
    """An absent tool fails the run in CI (it must be installed there) and skips elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: run `bash deploy/tools/install.sh` before the tests)")
    pytest.skip(message)


def ensure_tools_installed() -> None:
    """Runs deploy/tools/install.sh once when a pinned tool is missing and Go is available."""
    wanted = (TOOLS_BIN / "kustomize", TOOLS_BIN / "composecheck", TOOLS_BIN / "actionlint")
    if all(path.exists() for path in wanted) or shutil.which("go") is None:
        return
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], check=False, timeout=240, capture_output=True, text=True
    )
    if result.returncode != 0:
        tool_missing(f"deploy/tools/install.sh failed:\n{result.stdout}{result.stderr}")


def kustomize_command() -> list[str]:
    """The pinned kustomize from install.sh, else any kustomize or kubectl on PATH."""
    ensure_tools_installed()
    if (TOOLS_BIN / "kustomize").exists():
        return [str(TOOLS_BIN / "kustomize"), "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    tool_missing("neither kustomize nor kubectl is installed")
    raise AssertionError("unreachable")


def composecheck_command() -> list[str]:
    """deploy/tools/composecheck, built by install.sh."""
    ensure_tools_installed()
    binary = TOOLS_BIN / "composecheck"
    if not binary.exists():
        tool_missing(f"{binary} is not built and Go is not available to build it")
    return [str(binary)]


def actionlint_command() -> list[str]:
    """actionlint, installed by install.sh (or any on PATH)."""
    ensure_tools_installed()
    if (TOOLS_BIN / "actionlint").exists():
        return [str(TOOLS_BIN / "actionlint")]
    if shutil.which("actionlint"):
        return ["actionlint"]
    tool_missing("actionlint is not installed and Go is not available to build it")
    raise AssertionError("unreachable")


def kustomize_build(directory: Path) -> list[Manifest]:
    """The manifests a kustomization renders; fails the test with kustomize's own words."""
    result = subprocess.run(
        [*kustomize_command(), str(directory)], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        pytest.fail(f"kustomize build {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def compose_config(
    compose_file: Path, project_dir: Path, env_file: Path = VERSIONS_FILE
) -> tuple[int, str, str]:
    """Runs composecheck: exit code, the resolved project as JSON, and the error text. Variables come
    from ``env_file`` (the repository's .env, which docker compose reads by itself)."""
    result = subprocess.run(
        [
            *composecheck_command(),
            "-project-dir",
            str(project_dir),
            "-env-file",
            str(env_file),
            str(compose_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


# --- Dockerfiles ---------------------------------------------------------------------------------

#: The service image, one file for the three services (``--build-arg SERVICE=... HTTP_PORT=...``).
SERVICE_DOCKERFILE: Final = DEPLOY_DIR / "Dockerfile"
SANDBOX_DOCKERFILE: Final = DEPLOY_DIR / "sandbox" / "Dockerfile"
#: The OCI annotations every image carries (https://github.com/opencontainers/image-spec).
OCI_LABELS: Final = tuple(
    f"org.opencontainers.image.{key}" for key in ("title", "description", "source", "version", "revision")
)


def service_build_args(name: str) -> dict[str, str]:
    """The build arguments that make deploy/Dockerfile the image of service ``name``."""
    return {"SERVICE": name, "HTTP_PORT": str(SERVICES[name].port)}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))
    return instructions


_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# Their exec form is run as written: a shell, if the command starts one, expands it at run time.
_RUN_TIME_ONLY: Final = frozenset({"CMD", "ENTRYPOINT", "HEALTHCHECK"})


def resolve_build_args(
    instructions: Sequence[Instruction], build_args: Mapping[str, str]
) -> list[Instruction]:
    """The instructions with ``$NAME``/``${NAME}`` replaced as the builder replaces them.

    Scoping as Docker's: an ARG before the first FROM is seen by FROM lines only, a stage sees an ARG
    once it declares it (value from ``build_args``, else its default, else the global one) and the
    ENVs it set. A name declared as an ARG somewhere but not in the stage's scope becomes empty (the
    forgotten re-declaration); a name never declared (``$PATH``) is left as written.
    """
    declared = {i.args.partition("=")[0].strip() for i in instructions if i.keyword == "ARG"}
    global_scope: dict[str, str] = {}
    scope: dict[str, str] | None = None

    def expand(text: str, names: Mapping[str, str]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name in names:
                return names[name]
            return "" if name in declared else match.group(0)

        return _VARIABLE.sub(one, text)

    resolved: list[Instruction] = []
    for instruction in instructions:
        keyword, args = instruction.keyword, instruction.args
        if keyword == "FROM":
            resolved.append(Instruction(keyword, expand(args, global_scope)))
            scope = {}
            continue
        names = global_scope if scope is None else scope
        # Expanded with the names in scope before the instruction (an ENV's pairs do not see each other).
        resolved.append(Instruction(keyword, args if keyword in _RUN_TIME_ONLY else expand(args, names)))
        if keyword == "ARG":
            name, has_default, default = args.partition("=")
            name = name.strip()
            if name in build_args:
                names[name] = build_args[name]
            elif has_default:
                names[name] = expand(default.strip().strip('"'), names)
            elif name in global_scope and scope is not None:
                names[name] = global_scope[name]
        elif keyword == "ENV":
            names.update(pair.partition("=")[::2] for pair in shlex.split(resolved[-1].args))
    return resolved


def dockerfile_stages(instructions: Sequence[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by build stage, each list starting with its FROM."""
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([instruction])
        elif stages:
            stages[-1].append(instruction)
    return stages


def stage_env(stage: Sequence[Instruction]) -> dict[str, str]:
    """The environment a (resolved) stage sets with ENV."""
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            env.update(pair.partition("=")[::2] for pair in shlex.split(instruction.args))
    return env


def stage_labels(stage: Sequence[Instruction]) -> dict[str, str]:
    """The labels a (resolved) stage sets with LABEL."""
    labels: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "LABEL":
            labels.update(pair.partition("=")[::2] for pair in shlex.split(instruction.args))
    return labels


def run_time_command(cmd: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """What a container runs: an exec-form CMD as it is, ``sh -c "exec ..."`` with the image's
    environment expanded (the shell only reads variables and hands over to the command)."""
    if len(cmd) == 3 and cmd[0] in {"sh", "/bin/sh"} and cmd[1] == "-c" and cmd[2].startswith("exec "):
        script = _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), cmd[2])
        return shlex.split(script)[1:]
    return list(cmd)


def dockerfile_problems(
    text: str,
    package: str,
    port: int,
    health_path: str | None = "/livez",
    *,
    extra_cmd_args: bool = False,
    build_args: Mapping[str, str] | None = None,
) -> list[str]:
    """Structural rules of an image, built with ``build_args``: ``health_path`` None accepts any
    python health check, and ``extra_cmd_args`` lets CMD pass arguments after ``python -m <package>``."""
    problems: list[str] = []
    if GPL_TEST_STORE in text.lower():
        problems.append(f"mentions {GPL_TEST_STORE}: the GPL test store must never be in an image")
    instructions = resolve_build_args(dockerfile_instructions(text), build_args or {})
    stages = dockerfile_stages(instructions)
    if len(stages) < 2:
        return [*problems, "not a multi-stage build"]
    runtime = stages[-1]
    runtime_base = runtime[0].args.split()[0]
    if "python:3.11" not in runtime_base:
        problems.append(f"runtime stage is not built on python:3.11: {runtime_base}")
    if not re.search(r"@sha256:[0-9a-f]{64}$", runtime_base):
        problems.append(f"runtime base image {runtime_base} is not pinned by digest")
    if any(i.keyword == "RUN" and re.search(r"\b(uv|pip)\b", i.args) for i in runtime):
        problems.append("the runtime stage installs packages: only the builder may")
    if not any(i.keyword == "COPY" and "--from=" in i.args for i in runtime):
        problems.append("the runtime stage copies nothing from the builder")
    labels = stage_labels(runtime)
    for label in OCI_LABELS:
        if not labels.get(label):
            problems.append(f"the runtime stage has no {label} label")
    if labels.get(OCI_LABELS[0]) and package not in labels[OCI_LABELS[0]]:
        problems.append(f"the image title {labels[OCI_LABELS[0]]!r} does not name {package}")

    syncs = [i.args for stage in stages[:-1] for i in stage if i.keyword == "RUN" and "uv sync" in i.args]
    if not syncs:
        problems.append("no `uv sync` in a builder stage")
    for sync in syncs:
        for flag in ("--frozen", "--no-dev", f"--package {package}"):
            if not re.search(re.escape(flag) + r"(\s|$)", sync):
                problems.append(f"`uv sync` without {flag}: {sync}")
        if re.search(r"--(all-groups|dev\b|group\b|only-dev)", sync):
            problems.append(f"`uv sync` pulls a dependency group into the image: {sync}")
    has_uv = any(
        (i.keyword in {"COPY", "FROM"} and "ghcr.io/astral-sh/uv" in i.args)
        or (i.keyword == "RUN" and "pip install uv" in i.args)
        for stage in stages[:-1]
        for i in stage
    )
    if not has_uv:
        problems.append("the builder gets uv neither from ghcr.io/astral-sh/uv nor from `pip install uv`")

    users = [i.args for i in runtime if i.keyword == "USER"]
    if not users:
        problems.append("the runtime stage sets no USER: the image would run as root")
    else:
        user = users[-1].split(":")[0]
        if not user.isdigit():
            problems.append(f"USER {users[-1]} is not numeric (runAsNonRoot needs a numeric UID)")
        elif int(user) == 0:
            problems.append("USER 0 is root")
    if not any(i.keyword == "EXPOSE" and str(port) in i.args.split() for i in runtime):
        problems.append(f"does not EXPOSE {port}")
    env = stage_env(runtime)
    if "HTTP_PORT" in env and env["HTTP_PORT"] != str(port):
        problems.append(f"HTTP_PORT is {env['HTTP_PORT']!r}, not {port}")
    healthchecks = [i.args for i in runtime if i.keyword == "HEALTHCHECK"]
    if not healthchecks:
        problems.append("no HEALTHCHECK")
    else:
        check = healthchecks[-1]
        if "python" not in check or (health_path is not None and health_path not in check):
            problems.append(f"HEALTHCHECK must hit {health_path} with python: {check}")
        if re.search(r"\b(curl|wget)\b", check):
            problems.append(f"HEALTHCHECK uses curl or wget, which the slim image lacks: {check}")
        if "HTTP_PORT" in check and "HTTP_PORT" not in env:
            problems.append("HEALTHCHECK reads HTTP_PORT, which the image does not set")
    cmds = [i.args for i in runtime if i.keyword == "CMD"]
    expected_cmd = ["python", "-m", package]
    cmd = _json_list(cmds[-1]) if cmds else None
    command = run_time_command(cmd, env) if cmd is not None else None
    if command is None or (command[:3] if extra_cmd_args else command) != expected_cmd:
        problems.append(f"CMD is not {json.dumps(expected_cmd)}{' ...' if extra_cmd_args else ''}")
    return problems


def _json_list(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def copy_sources(text: str, build_args: Mapping[str, str] | None = None) -> list[str]:
    """The build-context paths a Dockerfile COPYs (not those copied from another stage or image)."""
    sources: list[str] = []
    for instruction in resolve_build_args(dockerfile_instructions(text), build_args or {}):
        if instruction.keyword != "COPY" or "--from=" in instruction.args:
            continue
        words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


def service_guard(text: str) -> set[str]:
    """The ``SERVICE:HTTP_PORT`` pairs the service image's builder accepts (its ``case`` guard)."""
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "RUN" and instruction.args.startswith("case"):
            match = re.search(r"\bin\s+([a-z0-9_|:-]+)\)", instruction.args)
            if match:
                return set(match.group(1).split("|"))
    return set()


def dockerignore_excludes(patterns: Sequence[str], path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context, by .dockerignore's rules.

    As Docker does: the last pattern that matches the path or one of its parent directories wins;
    ``!`` re-includes; ``*`` and ``?`` stay within a path segment, ``**`` spans any number of them.
    """
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.lstrip("!").strip().strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


# --- Compose -------------------------------------------------------------------------------------


def compose_problems(project: Mapping[str, Any]) -> list[str]:
    """Rules of the local stack, on the project as composecheck resolved it."""
    problems: list[str] = []
    services: Mapping[str, Any] = project.get("services", {})
    expected = {"kafka", "kafka-topics", "mongodb", "mailpit", "sandbox", *SERVICES}
    problems += [f"service {name!r} is missing" for name in sorted(expected - set(services))]
    versions = parse_versions(VERSIONS_FILE.read_text())
    if not str(services.get("kafka", {}).get("image", "")).startswith("apache/kafka:"):
        problems.append("kafka must run the official apache/kafka image")
    for name, variable in (
        ("kafka", "KAFKA_IMAGE"),
        ("kafka-topics", "KAFKA_IMAGE"),
        ("mongodb", "MONGODB_IMAGE"),
        ("mailpit", "MAILPIT_IMAGE"),
    ):
        image = services.get(name, {}).get("image")
        if name in services and image != versions[variable]:
            problems.append(f"{name} runs {image}, not {variable} of .env ({versions[variable]})")
    command = services.get("mongodb", {}).get("command") or []
    if "--replSet" not in command:
        problems.append("mongodb must run as a replica set (mongod --replSet)")

    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            condition = spec.get("condition")
            if condition == "service_healthy" and not services.get(dependency, {}).get("healthcheck"):
                problems.append(f"{name} waits for {dependency} to be healthy, which has no healthcheck")
            if condition == "service_started":
                problems.append(f"{name} depends on {dependency} without a health or completion condition")
        long_running = name != "kafka-topics"
        if long_running and not (service.get("healthcheck") or {}).get("test"):
            problems.append(f"{name} has no healthcheck")
        for port in service.get("ports") or []:
            if port.get("host_ip") != "127.0.0.1":
                problems.append(f"{name} publishes {port.get('target')} beyond localhost")

    for name, facts in SERVICES.items():
        service = services.get(name)
        if service is None:
            continue
        build = service.get("build") or {}
        if build.get("dockerfile") != str(SERVICE_DOCKERFILE.relative_to(REPO_ROOT)):
            problems.append(f"{name} is not built from deploy/Dockerfile")
        args = {key: str(value) for key, value in (build.get("args") or {}).items()}
        for arg, value in service_build_args(name).items():
            if args.get(arg) != value:
                problems.append(f"{name} is built with {arg}={args.get(arg)!r}, not {value!r}")
        environment: Mapping[str, Any] = service.get("environment") or {}
        for variable in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL", "MONGODB_DATABASE", *facts.secrets):
            if not environment.get(variable):
                problems.append(f"{name} lacks {variable}")
        if str(environment.get("HTTP_PORT")) != str(facts.port):
            problems.append(f"{name} HTTP_PORT is not {facts.port}")
        conditions = {dep: spec.get("condition") for dep, spec in (service.get("depends_on") or {}).items()}
        if conditions.get("kafka-topics") != "service_completed_successfully":
            problems.append(f"{name} does not wait for the topics to be created")
        if conditions.get("mongodb") != "service_healthy":
            problems.append(f"{name} does not wait for a healthy mongodb")
        if GPL_TEST_STORE in json.dumps(service).lower():
            problems.append(f"{name} mentions {GPL_TEST_STORE}")
    return problems


def dev_secret_problems(env: Mapping[str, str]) -> list[str]:
    """The dev secrets are well-formed and obviously fake."""
    problems: list[str] = []
    for key in ("API_JWT_SECRET", "CREDENTIALS_KEYS", "CONNECTOR_PRIVATE_KEY"):
        if not env.get(key):
            problems.append(f"compose.env lacks {key}")
    if "dev" not in env.get("API_JWT_SECRET", "dev").lower():
        problems.append("API_JWT_SECRET does not say it is a dev value")
    for key in filter(None, env.get("CREDENTIALS_KEYS", "").split(",")):
        raw = base64.urlsafe_b64decode(key)
        if len(raw) != 32:
            problems.append(f"a CREDENTIALS_KEYS entry is {len(raw)} bytes, not 32")
        elif b"dev-only" not in raw:
            problems.append("a CREDENTIALS_KEYS entry is not an obviously fake key")
    if env.get("CONNECTOR_PRIVATE_KEY"):
        private = base64.b64decode(env["CONNECTOR_PRIVATE_KEY"])
        if private != bytes(range(32)):
            problems.append("CONNECTOR_PRIVATE_KEY is not the obviously fake key 00..1f")
    for key, value in env.items():
        if re.match(r"^(sk|rk)_live_", value):
            problems.append(f"{key} holds a live Stripe key")
    return problems


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str]


def compose_topics(text: str) -> dict[str, TopicSpec]:
    """deploy/compose/topics.txt: name, partitions, key=value configs."""
    topics: dict[str, TopicSpec] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        config = dict(item.split("=", 1) for item in fields[2].split(",")) if len(fields) > 2 else {}
        topics[fields[0]] = TopicSpec(fields[0], int(fields[1]), config)
    return topics


# --- Kubernetes: schemas -------------------------------------------------------------------------


def _crd_validator(api_version: str, kind: str) -> Any:
    schema = json.loads((SCHEMAS_DIR / CRD_SCHEMAS[(api_version, kind)]).read_text())
    return jsonschema.Draft202012Validator(schema)


def schema_problems(manifests: Iterable[Manifest]) -> list[str]:
    """Built-in kinds against Kubernetes' own schemas (strict), custom kinds against deploy/schemas."""
    problems: list[str] = []
    for manifest in manifests:
        label = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
        if key in CRD_SCHEMAS:
            for error in _crd_validator(*key).iter_errors(manifest):
                where = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"{label}: {where}: {error.message}")
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except SchemaNotFoundError:
            problems.append(f"{label}: {key[0]} {key[1]} has no schema (neither built in nor vendored)")
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(p) for p in error.path)
            problems.append(f"{label}: {where}: {error.message}")
    return problems


# --- Kubernetes: semantics -----------------------------------------------------------------------


def by_kind(manifests: Iterable[Manifest], kind: str) -> Iterator[Manifest]:
    return (m for m in manifests if m.get("kind") == kind)


def _name(manifest: Manifest) -> str:
    return str(manifest.get("metadata", {}).get("name"))


def topic_problems(manifests: Sequence[Manifest]) -> list[str]:
    problems: list[str] = []
    topics = {t["spec"].get("topicName", _name(t)): t for t in by_kind(manifests, "KafkaTopic")}
    for missing in sorted(set(PUBLIC_TOPICS) - set(topics)):
        problems.append(f"public topic {missing} has no KafkaTopic")
    for missing in sorted(all_topics() - set(topics) - set(PUBLIC_TOPICS)):
        problems.append(f"topic {missing} has no KafkaTopic")
    for name, topic in topics.items():
        spec = topic["spec"]
        config = spec.get("config") or {}
        if not topic["metadata"].get("labels", {}).get("strimzi.io/cluster"):
            problems.append(f"KafkaTopic {name} has no strimzi.io/cluster label")
        if "partitions" not in spec or "replicas" not in spec:
            problems.append(f"KafkaTopic {name} leaves partitions or replicas to the broker default")
        if int(config.get("min.insync.replicas", 1)) > int(spec.get("replicas", 1)):
            problems.append(f"KafkaTopic {name}: min.insync.replicas exceeds replicas")
        compacted = config.get("cleanup.policy") == "compact"
        if name in BILLING_TOPICS and not compacted:
            problems.append(f"KafkaTopic {name} must be compacted (cleanup.policy: compact)")
        if name not in BILLING_TOPICS and not compacted and "retention.ms" not in config:
            problems.append(f"KafkaTopic {name} has no explicit retention.ms")
    return problems


def autoscaling_problems(manifests: Sequence[Manifest]) -> list[str]:
    problems: list[str] = []
    partitions = {
        t["spec"].get("topicName", _name(t)): int(t["spec"].get("partitions", 0))
        for t in by_kind(manifests, "KafkaTopic")
    }
    scaled = [
        s for s in by_kind(manifests, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == "importer"
    ]
    if len(scaled) != 1:
        return ["the importer must have exactly one ScaledObject"]
    spec = scaled[0]["spec"]
    triggers = [
        t
        for t in spec["triggers"]
        if t["type"] == "kafka"
        and t["metadata"].get("consumerGroup") == PAGE_REQUESTS_GROUP
        and t["metadata"].get("topic") == PAGE_REQUESTS
    ]
    if not triggers:
        problems.append(
            f"the importer does not scale on the lag of group {PAGE_REQUESTS_GROUP} on {PAGE_REQUESTS}"
        )
    maximum = int(spec.get("maxReplicaCount", 100))
    if maximum > partitions.get(PAGE_REQUESTS, 0):
        problems.append(
            f"importer maxReplicaCount {maximum} exceeds the {partitions.get(PAGE_REQUESTS, 0)} partitions "
            f"of {PAGE_REQUESTS}: the extra consumers would sit idle"
        )
    if int(spec.get("minReplicaCount", 0)) > maximum:
        problems.append("importer minReplicaCount exceeds maxReplicaCount")
    if int(spec.get("minReplicaCount", 0)) < 1:
        problems.append("importer minReplicaCount is 0: nobody would consume connections.v1")
    importer = next((d for d in by_kind(manifests, "Deployment") if _name(d) == "importer"), None)
    if importer is not None and "replicas" in importer["spec"]:
        problems.append("the importer Deployment sets replicas, which the autoscaler owns")
    for trigger in triggers:
        ref = (trigger.get("authenticationRef") or {}).get("name")
        if ref and ref not in {_name(a) for a in by_kind(manifests, "TriggerAuthentication")}:
            problems.append(f"ScaledObject importer refers to a missing TriggerAuthentication {ref}")
    return problems


def deployment_problems(manifests: Sequence[Manifest]) -> list[str]:
    problems: list[str] = []
    deployments = {_name(d): d for d in by_kind(manifests, "Deployment")}
    problems += [f"no Deployment for {name}" for name in sorted(set(SERVICES) - set(deployments))]
    accounts = {_name(a) for a in by_kind(manifests, "ServiceAccount")}
    config_maps = {_name(c) for c in by_kind(manifests, "ConfigMap")}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext") or {}
        if pod_security.get("runAsNonRoot") is not True:
            problems.append(f"{name}: pod securityContext.runAsNonRoot is not true")
        if (pod_security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: pod seccompProfile is not RuntimeDefault")
        if pod.get("serviceAccountName") not in accounts:
            problems.append(f"{name}: its ServiceAccount is missing")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: mounts a service account token it does not need")
        for container in pod.get("containers", []):
            problems += _container_problems(name, container, config_maps)
    return problems


def _container_problems(name: str, container: Mapping[str, Any], config_maps: set[str]) -> list[str]:
    problems: list[str] = []
    who = f"{name}/{container.get('name')}"
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        got = ((container.get(probe) or {}).get("httpGet") or {}).get("path")
        if got != path:
            problems.append(f"{who}: {probe} does not GET {path}")
    resources = container.get("resources") or {}
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(bound) or {}):
                problems.append(f"{who}: no {bound}.{resource}")
    security = container.get("securityContext") or {}
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{who}: readOnlyRootFilesystem is not true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{who}: allowPrivilegeEscalation is not false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{who}: does not drop ALL capabilities")
    if security.get("runAsNonRoot") is False or security.get("runAsUser") == 0:
        problems.append(f"{who}: runs as root")
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if "@sha256:" not in image and (not tag or tag == "latest"):
        problems.append(f"{who}: image {image} has no pinned tag")
    for env in container.get("env") or []:
        if env.get("name") in SECRET_ENV and "value" in env:
            problems.append(f"{who}: secret {env['name']} is a literal value, not a secretKeyRef")
    env_names = {env.get("name") for env in container.get("env") or []}
    for secret in SERVICES[name].secrets if name in SERVICES else ():
        if secret not in env_names:
            problems.append(f"{who}: {secret} is not set from a Secret")
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            problems.append(f"{who}: envFrom secretRef hides which secrets it reads; use secretKeyRef")
        ref = (source.get("configMapRef") or {}).get("name")
        if ref is not None and ref not in config_maps:
            problems.append(f"{who}: ConfigMap {ref} is not in the manifests")
    return problems


def secret_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Secret values are never committed: a Secret in the manifests may carry no data."""
    problems: list[str] = []
    for secret in by_kind(manifests, "Secret"):
        carried = [key for key in ("data", "stringData") if secret.get(key)]
        if carried:
            problems.append(f"Secret {_name(secret)} carries committed values ({', '.join(carried)})")
    return problems


def availability_problems(manifests: Sequence[Manifest]) -> list[str]:
    """A PodDisruptionBudget per Deployment, never one that forbids every voluntary eviction."""
    problems: list[str] = []
    budgets = {_name(p): p for p in by_kind(manifests, "PodDisruptionBudget")}
    minimum_replicas = {_name(d): int(d["spec"].get("replicas", 1)) for d in by_kind(manifests, "Deployment")}
    for scaled in by_kind(manifests, "ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        minimum_replicas[target] = int(scaled["spec"].get("minReplicaCount", 0))
    for name, replicas in minimum_replicas.items():
        budget = budgets.get(name)
        if budget is None:
            problems.append(f"{name} has no PodDisruptionBudget")
            continue
        min_available = budget["spec"].get("minAvailable")
        if isinstance(min_available, int) and min_available >= replicas:
            problems.append(
                f"PDB {name}: minAvailable {min_available} with {replicas} replicas blocks drains"
            )
    return problems


def network_problems(manifests: Sequence[Manifest]) -> list[str]:
    problems: list[str] = []
    policies = list(by_kind(manifests, "NetworkPolicy"))
    deny = [
        p
        for p in policies
        if p["spec"].get("podSelector") in ({}, None)
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        problems.append("no default-deny NetworkPolicy (all pods, Ingress and Egress, no rules)")
    dns_ports = {
        (port.get("protocol"), port.get("port"))
        for p in policies
        if p["spec"].get("podSelector") in ({}, None)
        for rule in p["spec"].get("egress") or []
        for port in rule.get("ports") or []
    }
    if not {("UDP", 53), ("TCP", 53)} <= dns_ports:
        problems.append("DNS egress (53/UDP and 53/TCP) is not allowed for every pod")
    for name in SERVICES:
        egress_ports = {
            port.get("port")
            for p in policies
            if _selects(p["spec"].get("podSelector") or {}, name)
            for rule in p["spec"].get("egress") or []
            for port in rule.get("ports") or []
        }
        if not {9093, 27017} <= egress_ports:
            problems.append(f"{name} may not reach Kafka (9093) and MongoDB (27017)")
        ingress_ports = {
            port.get("port")
            for p in policies
            if _selects(p["spec"].get("podSelector") or {}, name)
            for rule in p["spec"].get("ingress") or []
            for port in rule.get("ports") or []
        }
        if "http" not in ingress_ports:
            problems.append(f"{name} cannot be scraped by Prometheus")
    return problems


def _selects(selector: Mapping[str, Any], service: str) -> bool:
    """Whether a pod selector picks the pods of ``service`` (labelled app.kubernetes.io/name)."""
    return _label_selector_matches(
        selector, {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "billing-import"}
    )


def kafka_user_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Each service's KafkaUser grants exactly the ACLs its AsyncAPI document implies: none missing
    (a consumer the cluster refuses), none more (least privilege), none by prefix or wildcard."""
    problems: list[str] = []
    users = {_name(u): u for u in by_kind(manifests, "KafkaUser")}
    topics = {t["spec"].get("topicName", _name(t)) for t in by_kind(manifests, "KafkaTopic")}
    for name, facts in SERVICES.items():
        user = users.get(name)
        if user is None:
            problems.append(f"no KafkaUser for {name}")
            continue
        granted: set[tuple[str, str, str]] = set()
        for acl in user["spec"].get("authorization", {}).get("acls", []):
            resource = acl["resource"]
            if resource.get("patternType", "literal") != "literal":
                problems.append(f"KafkaUser {name}: prefix ACL on {resource.get('name')}: grant names")
            for operation in acl["operations"]:
                granted.add((resource["type"], resource.get("name", ""), operation))
            if resource["type"] == "topic" and resource.get("name") not in topics:
                problems.append(f"KafkaUser {name}: ACL on unknown topic {resource.get('name')}")
        needed = facts.kafka.acls()
        for resource_type, resource_name, operation in sorted(needed - granted):
            problems.append(f"KafkaUser {name} lacks {operation} on {resource_type} {resource_name}")
        for resource_type, resource_name, operation in sorted(granted - needed):
            problems.append(f"KafkaUser {name} grants {operation} on {resource_type} {resource_name}, unused")
        broad = {g for g in granted if g[2] == "All" or g[1] == "*"}
        if broad:
            problems.append(f"KafkaUser {name} has broad grants: {sorted(broad)}")
    return problems


# PromQL words that are not series: aggregations, their modifiers and the binary operators' keywords.
_PROMQL_KEYWORDS: Final = frozenset(
    {
        *("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk"),
        *("topk", "quantile", "limitk", "limit_ratio"),
        *("by", "without", "on", "ignoring", "group_left", "group_right", "bool"),
        *("and", "or", "unless", "offset", "atan2", "inf", "nan"),
    }
)


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (as written: ``x_bucket`` of a histogram ``x``).

    Strings, label matchers, ranges and grouping label lists are dropped, then every identifier that
    is not a function call, an aggregation or a keyword is a metric name.
    """
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word in _PROMQL_KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


@functools.cache
def _exposed_metrics() -> frozenset[str]:
    return frozenset(exposed_metrics())


def unexposed_metrics(expr: str) -> list[str]:
    """The metrics ``expr`` reads that neither a service nor the cluster's exporters expose (a
    histogram's ``_bucket``, ``_count`` and ``_sum`` series belong to it)."""
    exposed = _exposed_metrics()
    missing: list[str] = []
    for metric in sorted(promql_metrics(expr)):
        base = re.sub(r"_(bucket|count|sum)$", "", metric)
        if not external(metric) and metric not in exposed and base not in exposed:
            missing.append(metric)
    return missing


def markdown_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown document's headings: lower case, punctuation dropped,
    spaces as hyphens, ``-1``, ``-2`` ... after a repeated one."""
    anchors: set[str] = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def _absent_job(expr: str) -> str | None:
    """The job an ``absent(up{..., job="x"} ...)`` expression watches, if it is one."""
    match = re.fullmatch(r"\s*absent\(\s*up\{([^}]*)\}[^()]*\)\s*", expr)
    if match is None:
        return None
    job = re.search(r'\bjob\s*=\s*"([^"]+)"', match.group(1))
    return job.group(1) if job else None


def alert_problems(manifests: Sequence[Manifest], guide: str | None = None) -> list[str]:
    """Alerting rules: group names unique (the CRD's list-map key), alert names unique, a severity on
    each, every metric an expression reads exposed by a service (or by the cluster's exporters), a
    runbook_url on each alert that points at a heading of the operations guide (``guide``, its
    text), and, where there are rules, one that fires when a service is absent."""
    problems: list[str] = []
    alerts: set[str] = set()
    anchors = markdown_anchors(OPERATIONS_GUIDE.read_text() if guide is None else guide)
    watched: set[str] = set()
    rules = list(by_kind(manifests, "PrometheusRule"))
    for rule in rules:
        for group in rule["spec"].get("groups", []):
            for entry in group.get("rules", []):
                if "alert" not in entry:
                    continue
                job = _absent_job(str(entry.get("expr", "")))
                if job is not None:
                    watched.add(job)
                url = str(entry.get("annotations", {}).get("runbook_url", ""))
                if not url:
                    problems.append(f"alert {entry['alert']} has no runbook_url")
                elif not url.startswith(RUNBOOK_BASE):
                    problems.append(f"alert {entry['alert']}: runbook_url {url} is not in {RUNBOOK_BASE}")
                elif url.removeprefix(RUNBOOK_BASE) not in anchors:
                    problems.append(
                        f"alert {entry['alert']}: runbook_url {url} names no heading of docs/operations.md"
                    )
    if rules:
        problems += [f"no alert fires when {name} is absent" for name in sorted(set(SERVICES) - watched)]
    for rule in rules:
        groups = [group["name"] for group in rule["spec"].get("groups", [])]
        problems += [
            f"rule group {name} appears twice" for name in sorted(set(groups)) if groups.count(name) > 1
        ]
        for group in rule["spec"].get("groups", []):
            for entry in group.get("rules", []):
                name = entry.get("alert") or entry.get("record", "?")
                if name in alerts:
                    problems.append(f"alert {name} appears twice")
                alerts.add(name)
                if "alert" in entry and "severity" not in entry.get("labels", {}):
                    problems.append(f"alert {name} has no severity label")
                for metric in unexposed_metrics(str(entry.get("expr", ""))):
                    problems.append(f"alert {name} reads {metric}, which no service exposes")
    return problems


def _label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels and matchExpressions) picks ``labels``."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def monitoring_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Where there are alerting rules, Prometheus (run by the Prometheus Operator, which reads no
    scrape annotations) must scrape every service: a ServiceMonitor selecting its Service, on a port
    the Service has, at /metrics, with the service's name as the ``job`` the rules select on."""
    if not any(by_kind(manifests, "PrometheusRule")):
        return []
    problems: list[str] = []
    services = {_name(s): s for s in by_kind(manifests, "Service")}
    monitors = list(by_kind(manifests, "ServiceMonitor"))
    for name in SERVICES:
        service = services.get(name)
        if service is None:
            problems.append(f"no Service {name} to scrape")
            continue
        labels: Mapping[str, str] = service["metadata"].get("labels") or {}
        ports = {port.get("name") for port in service["spec"].get("ports") or []}
        scraped = False
        for monitor in monitors:
            spec = monitor["spec"]
            # No namespaceSelector: the ServiceMonitor's own namespace only.
            namespaces = spec.get("namespaceSelector") or {}
            namespace = service["metadata"].get("namespace")
            if namespaces.get("matchNames"):
                in_reach = namespace in namespaces["matchNames"]
            else:
                in_reach = namespace == monitor["metadata"].get("namespace")
            if not (namespaces.get("any") or in_reach):
                continue
            if not _label_selector_matches(spec.get("selector") or {}, labels):
                continue
            job_label = spec.get("jobLabel")
            job = labels.get(job_label, name) if job_label else name
            if job != name:
                problems.append(
                    f"ServiceMonitor {_name(monitor)} scrapes {name} as job {job!r}, not {name!r}"
                )
            for endpoint in spec.get("endpoints") or []:
                if endpoint.get("port") not in ports:
                    problems.append(
                        f"ServiceMonitor {_name(monitor)}: {name} has no port {endpoint.get('port')!r}"
                    )
                elif endpoint.get("path", "/metrics") != "/metrics":
                    problems.append(
                        f"ServiceMonitor {_name(monitor)} scrapes {name} at {endpoint.get('path')}"
                    )
                else:
                    scraped = True
        if not scraped:
            problems.append(f"no ServiceMonitor scrapes {name}'s /metrics")
    return problems


def release_image_problems(manifests: Sequence[Manifest]) -> list[str]:
    """A release runs the very images that were built and scanned: each container's image is named by
    a release tag and pinned by digest (``name:tag@sha256:...``)."""
    problems: list[str] = []
    for deployment in by_kind(manifests, "Deployment"):
        for container in deployment["spec"]["template"]["spec"].get("containers", []):
            image = str(container.get("image", ""))
            if not re.fullmatch(r"[^@:]+(:[^@:/]+)?:[0-9][\w.+-]*@sha256:[0-9a-f]{64}", image):
                problems.append(
                    f"{_name(deployment)}/{container.get('name')}: image {image} is not a release tag "
                    "pinned by digest"
                )
    return problems


def namespace_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Everything but the Namespace itself lives in billing-import: a resource an overlay adds
    without it would land in whatever namespace the applying context has."""
    return [
        f"{m['kind']} {_name(m)} is not in namespace billing-import"
        for m in manifests
        if m["kind"] != "Namespace" and m["metadata"].get("namespace") != "billing-import"
    ]


def k8s_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Every semantic rule of a rendered overlay."""
    return [
        *topic_problems(manifests),
        *autoscaling_problems(manifests),
        *deployment_problems(manifests),
        *secret_problems(manifests),
        *availability_problems(manifests),
        *network_problems(manifests),
        *kafka_user_problems(manifests),
        *alert_problems(manifests),
        *monitoring_problems(manifests),
        *namespace_problems(manifests),
    ]
