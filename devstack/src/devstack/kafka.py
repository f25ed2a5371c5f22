"""A real single-node Apache Kafka broker (KRaft, broker and controller in one JVM) from Maven jars."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from devstack.errors import InfrastructureUnavailable, ProcessNotReady
from devstack.net import LOCALHOST, free_port, port_open
from devstack.paths import cache_dir
from devstack.processes import ManagedProcess, ProcessSpec, ThrowawayServer
from devstack.topology import TopicSpec, ensure_topics
from devstack.versions import KAFKA_VERSION

#: Names the jars to download (the release is passed as ``kafka.version``); kept beside this package.
POM_PATH: Final = Path(__file__).resolve().parents[2] / "kafka" / "pom.xml"
JAVA_HEAP: Final = "512m"
START_TIMEOUT_S: Final = 60.0
MAVEN_TIMEOUT_S: Final = 600.0
#: The broker's settings besides its listeners and storage, the same for the local broker and the
#: Kafka container (devstack.containers): one node, no replication, topics made on first use too.
BROKER_SETTINGS: Final[Mapping[str, str]] = {
    "num.partitions": "6",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "6",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
    "log.cleaner.backoff.ms": "1000",
}
_START_ATTEMPTS: Final = 3  # a free port can be taken by someone else before the broker binds it
_COMPLETE_MARKER: Final = ".complete"

_LOG4J2_PROPERTIES: Final = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.partition.name = kafka.cluster.Partition
logger.partition.level = WARN
logger.logmanager.name = kafka.log.LogManager
logger.logmanager.level = WARN
logger.unifiedlog.name = org.apache.kafka.storage.internals.log
logger.unifiedlog.level = WARN
logger.replication.name = org.apache.kafka.controller.ReplicationControlManager
logger.replication.level = WARN
"""


def kafka_libs_dir() -> Path:
    return cache_dir() / "kafka" / KAFKA_VERSION / "libs"


def fetch_kafka_libs(libs: Path | None = None) -> Path:
    """The folder of the broker's jars, downloaded with Maven on first use and re-used afterwards."""
    target = libs or kafka_libs_dir()
    if (target / _COMPLETE_MARKER).is_file():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfrastructureUnavailable(
            f"Kafka {KAFKA_VERSION} is not in {target} and Maven (mvn) is missing to fetch it; "
            "install maven and a Java 17+ runtime, or set KAFKA_BOOTSTRAP_SERVERS"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the target and rename, so a concurrent run never sees half a folder.
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=target.parent))
    try:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM_PATH),
                "dependency:copy-dependencies",
                f"-Dkafka.version={KAFKA_VERSION}",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            timeout=MAVEN_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"mvn could not fetch Kafka {KAFKA_VERSION}:\n{result.stdout}\n{result.stderr}"
            )
        (staging / _COMPLETE_MARKER).touch()
        if target.exists() and not (target / _COMPLETE_MARKER).is_file():
            shutil.rmtree(target, ignore_errors=True)  # left half-done by an interrupted older run
        try:
            staging.rename(target)
        except OSError:
            if not (target / _COMPLETE_MARKER).is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfrastructureUnavailable(
            "no Java runtime (java) to run Kafka; install openjdk-17-jre-headless"
        )
    return java


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them: never one starting with ``-``, which the storage
    tool's command line would read as an option (one id in 64 would)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


class LocalKafka(ThrowawayServer):
    """A throw-away broker on free local ports with every topic of the stack created.

    ``bootstrap_servers`` is set once ``start()`` returns. Data lives in a temporary folder that
    ``stop()`` deletes.
    """

    def __init__(
        self,
        log_path: Path,
        *,
        topics: Sequence[TopicSpec] | None = None,
        heap: str = JAVA_HEAP,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.log_path = log_path
        self.topics = topics
        self.heap = heap
        self.start_timeout_s = start_timeout_s
        self.bootstrap_servers = ""
        self.port = 0
        super().__init__()

    def _start(self) -> None:
        libs = fetch_kafka_libs()
        java = _java()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_broker(java, libs)
                break
            except ProcessNotReady:
                self.stop()
                if attempt == _START_ATTEMPTS:
                    raise
        ensure_topics(self.bootstrap_servers, self.topics, timeout_s=self.start_timeout_s)

    def _start_broker(self, java: str, libs: Path) -> None:
        work_dir = self._new_work_dir("devstack-kafka-")
        self.port, controller_port = free_port(), free_port()
        properties = work_dir / "server.properties"
        properties.write_text(self._server_properties(work_dir, controller_port))
        log4j = work_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2_PROPERTIES)
        classpath = f"{libs}{os.sep}*"
        jvm = [java, f"-Xmx{self.heap}", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        formatted = subprocess.run(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(properties),
                "--standalone",
            ],
            capture_output=True,
            text=True,
            timeout=self.start_timeout_s,
            check=False,
        )
        if formatted.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{formatted.stdout}\n{formatted.stderr}")
        host, port = LOCALHOST, self.port
        self._process = ManagedProcess(
            ProcessSpec(
                name="kafka",
                argv=[*jvm, "kafka.Kafka", str(properties)],
                cwd=work_dir,
                probe=lambda: port_open(host, port),
                ready_timeout_s=self.start_timeout_s,
            ),
            self.log_path,
        ).start()
        self.bootstrap_servers = f"{LOCALHOST}:{self.port}"

    def _server_properties(self, work_dir: Path, controller_port: int) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"listeners=PLAINTEXT://{LOCALHOST}:{self.port},CONTROLLER://{LOCALHOST}:{controller_port}",
                f"advertised.listeners=PLAINTEXT://{LOCALHOST}:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"controller.quorum.voters=1@{LOCALHOST}:{controller_port}",
                f"log.dirs={work_dir / 'data'}",
                *(f"{name}={value}" for name, value in BROKER_SETTINGS.items()),
                "",
            ]
        )
