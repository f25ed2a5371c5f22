"""The local stack: broker, store, mail catcher, sandbox processors and services.

Used by the run command (``devstack up``, behind ``scripts/dev``) and by the tests
(``devstack.pytest_plugin``).
"""

from devstack.errors import InfrastructureUnavailable, ProcessNotReady
from devstack.events import CollectedEvent, TopicCollector
from devstack.infra import (
    Provided,
    ProvidedMail,
    docker_available,
    in_ci,
    provide_kafka,
    provide_mail,
    provide_store,
)
from devstack.kafka import LocalKafka, fetch_kafka_libs
from devstack.mailcatcher import CaughtMessage, MailCatcher, Refusal, Stage
from devstack.processes import (
    ManagedProcess,
    ProcessRunner,
    ProcessSpec,
    http_answers,
    http_ready,
    python_module,
)
from devstack.sandbox import SampleCredentials, SandboxEndpoints, SandboxLauncher
from devstack.settings import (
    SERVICES,
    StackSecrets,
    StackSettings,
    free_http_ports,
    mint_jwt,
    new_credentials_key,
    seal_secret,
)
from devstack.stack import ServiceStack, service_spec
from devstack.store import LocalStore
from devstack.topology import PAGE_REQUESTS, TopicSpec, ensure_topics, provision_topics, stack_topics
from devstack.versions import KAFKA_IMAGE, KAFKA_VERSION, MAILPIT_IMAGE, MONGODB_IMAGE

__all__ = [
    "KAFKA_IMAGE",
    "KAFKA_VERSION",
    "MAILPIT_IMAGE",
    "MONGODB_IMAGE",
    "PAGE_REQUESTS",
    "SERVICES",
    "CaughtMessage",
    "CollectedEvent",
    "InfrastructureUnavailable",
    "LocalKafka",
    "LocalStore",
    "MailCatcher",
    "ManagedProcess",
    "ProcessNotReady",
    "ProcessRunner",
    "ProcessSpec",
    "Provided",
    "ProvidedMail",
    "Refusal",
    "SampleCredentials",
    "SandboxEndpoints",
    "SandboxLauncher",
    "ServiceStack",
    "StackSecrets",
    "StackSettings",
    "Stage",
    "TopicCollector",
    "TopicSpec",
    "docker_available",
    "ensure_topics",
    "fetch_kafka_libs",
    "free_http_ports",
    "http_answers",
    "http_ready",
    "in_ci",
    "mint_jwt",
    "new_credentials_key",
    "provide_kafka",
    "provide_mail",
    "provide_store",
    "provision_topics",
    "python_module",
    "seal_secret",
    "service_spec",
    "stack_topics",
]
