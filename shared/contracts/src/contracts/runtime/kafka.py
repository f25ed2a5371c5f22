"""Kafka wiring shared by the services: one broker recipe, one way to publish and consume events."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Union
from weakref import WeakKeyDictionary

from aiokafka import AIOKafkaProducer
from faststream._internal.context import Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage as KafkaStreamMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from contracts.events import Event, TopicEvents
from contracts.runtime.consumer import (
    MessageHandler,
    MiddlewareFactory,
    Pipeline,
    PublishingOnly,
    RetryPolicy,
    Subscription,
)
from contracts.runtime.dead_letter import OnDeadLetter
from contracts.runtime.logging import get_logger
from contracts.runtime.metrics import REGISTRY
from contracts.runtime.settings import CommonSettings

CONTENT_TYPE_JSON: Final = "application/json"
#: Every producer of the system compresses its batches with zstd (aiokafka's codec is cramjam).
COMPRESSION: Final = "zstd"
#: The logger of the broker's own messages (connection and fetch errors, a handler's exception).
BROKER_LOGGER: Final = "faststream.broker"
HEADER_EVENT_TYPE: Final = "event-type"
#: Messages of a subscription handled at once (an ordered one handles one key at a time).
DEFAULT_CONCURRENCY: Final = 16

_log = get_logger(__name__)


class DurableProducer:
    """An aiokafka producer for messages sent outside faststream, started and stopped with its
    service: a send returns once every in-sync replica has the message (``acks=all``), the
    producer's own retries never write it twice (idempotent), batches are compressed as every
    producer's. A subclass sets how long a send waits for others to share its produce request
    (``linger_ms``) and the bytes a partition's batch holds (``max_batch_size``)."""

    linger_ms: ClassVar[int] = 5
    max_batch_size: ClassVar[int] = 16_384

    def __init__(
        self, bootstrap_servers: str, *, client_id: str, security: Mapping[str, Any] | None = None
    ) -> None:
        """``security``: :func:`client_security` of the service's settings, as its broker's."""
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._security = dict(security or {})
        self._started: AIOKafkaProducer | None = None

    @property
    def security_protocol(self) -> str:
        return str(self._security.get("security_protocol", "PLAINTEXT"))

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._started is None:
            raise RuntimeError(f"the producer {self._client_id} is not started")
        return self._started

    async def start(self) -> None:
        # Created here: an aiokafka producer belongs to the running event loop.
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            compression_type=COMPRESSION,
            linger_ms=self.linger_ms,
            max_batch_size=self.max_batch_size,
            **self._security,
        )
        await producer.start()
        self._started = producer

    async def stop(self) -> None:
        if self._started is not None:
            await self._started.stop()
            self._started = None


def build_broker(
    settings: CommonSettings,
    *,
    service: str,
    tracer_provider: TracerProvider | None = None,
) -> KafkaBroker:
    """A broker whose consumers run the consumption pipeline, traced and counted, and whose producer
    is idempotent.

    The pipeline is the outermost middleware; it runs faststream's telemetry and Prometheus
    middlewares around each message's whole handling (retries and dead letter included), and they
    wrap every publish as usual. With ``OTEL_SDK_DISABLED=true`` the telemetry middleware is left out
    (it would only run no-op spans on every message): the Prometheus one stays.
    """
    prometheus = KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service)
    observers: tuple[MiddlewareFactory, ...] = (prometheus,)
    if not settings.otel_sdk_disabled:
        observers = (KafkaTelemetryMiddleware(tracer_provider=tracer_provider), prometheus)
    pipeline = Pipeline(consuming=observers)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=broker_security(settings),
        client_id=service,
        enable_idempotence=True,
        acks="all",
        compression_type=COMPRESSION,
        middlewares=[pipeline, *(PublishingOnly(observer) for observer in observers)],
        # The broker's own errors (a denied or failed fetch, a handler's exception) reach the service's
        # log like any other line; its per-message "Received"/"Processed" lines are DEBUG, since each
        # handler logs its own unit of work.
        logger=logging.getLogger(BROKER_LOGGER),
        log_level=logging.DEBUG,
    )

    async def publish_dead_letter(
        topic: str, *, body: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await broker.publish(body, topic=topic, key=key, headers=headers)

    pipeline.publish_dead_letter = publish_dead_letter
    _PIPELINES[broker] = _Consumption(pipeline, RetryPolicy.from_settings(settings))
    return broker


async def stop_broker(broker: KafkaBroker) -> None:
    """Let the messages in flight finish (briefly) and commit them, then stop the broker."""
    consumption = _PIPELINES.get(broker)
    if consumption is not None:
        await consumption.pipeline.stop()
    await broker.stop()


def _sasl_credentials(settings: CommonSettings) -> tuple[str, str]:
    if settings.kafka_sasl_username is None or settings.kafka_sasl_password is None:
        raise ValueError(
            f"KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs KAFKA_SASL_USERNAME and "
            "KAFKA_SASL_PASSWORD"
        )
    return settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value()


def _ssl_context(settings: CommonSettings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol:
        return None
    return ssl.create_default_context(cafile=settings.kafka_ssl_cafile)


def client_security(settings: CommonSettings) -> dict[str, Any]:
    """The same security as keyword arguments of aiokafka's own clients (``AIOKafkaProducer``,
    ``AIOKafkaConsumer``), for a service that runs one beside its faststream broker."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol, "ssl_context": _ssl_context(settings)}
    if protocol.startswith("SASL"):
        username, password = _sasl_credentials(settings)
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": username,
            "sasl_plain_password": password,
        }
    return options


def broker_security(settings: CommonSettings) -> BaseSecurity | None:
    """The broker's authentication and TLS from ``KAFKA_SECURITY_PROTOCOL`` and its companions."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl_context = _ssl_context(settings)
    if not protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=ssl_context, use_ssl=True)
    username, password = _sasl_credentials(settings)
    mechanism = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }[settings.kafka_sasl_mechanism]
    return mechanism(
        username=username,
        password=password,
        ssl_context=ssl_context,
        use_ssl=ssl_context is not None,
    )


async def publish_event(broker: KafkaBroker, topic: str, event: Event) -> None:
    """Publish ``event`` as JSON, keyed by account so one account's events stay in order."""
    await broker.publish(
        event.model_dump_json().encode(),
        topic=topic,
        key=event.key(),
        headers={HEADER_EVENT_TYPE: event.type, "content-type": CONTENT_TYPE_JSON},
    )


EventHandler = Callable[[Event], Awaitable[None]]


class _OnTheLoop(Context):
    """faststream's ``Context`` parameter, resolved on the event loop: fast_depends hands a
    synchronous ``use`` to a worker thread, a thread hop for every message consumed."""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)


#: The message being consumed, as a handler's parameter (faststream's ``KafkaMessage`` annotation,
#: without the thread hop).
KafkaMessage = Annotated[KafkaStreamMessage, _OnTheLoop("message")]

#: The messages each broker consumes, by topic: the AsyncAPI document describes them from here, since
#: subscribers parse raw bytes themselves (an unknown event type is skipped, not rejected).
_SUBSCRIBED: WeakKeyDictionary[KafkaBroker, dict[str, tuple[type[BaseModel], ...]]] = WeakKeyDictionary()


def subscribed_messages(broker: KafkaBroker) -> Mapping[str, tuple[type[BaseModel], ...]]:
    return _SUBSCRIBED.get(broker, {})


def declare_publications(broker: KafkaBroker, publications: Mapping[str, Sequence[type[BaseModel]]]) -> None:
    """Describe what this service publishes on each topic, for its AsyncAPI document."""
    for topic, models in publications.items():
        schema: Any = models[0] if len(models) == 1 else Union[tuple(models)]  # noqa: UP007 - a runtime union
        broker.publisher(
            topic,
            title=f"{topic}:Publish",
            description=", ".join(model.__name__ for model in models),
            schema=schema,
        )


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    handler: MessageHandler,
    concurrency: int = DEFAULT_CONCURRENCY,
    ordered: bool = True,
    policy: RetryPolicy | None = None,
    on_dead_letter: OnDeadLetter | None = None,
    messages: Sequence[type[BaseModel]] = (),
    **options: Any,
) -> Subscription:
    """Consume ``topic`` in ``group_id`` through the consumption pipeline (see
    :mod:`contracts.runtime.consumer`): up to ``concurrency`` messages at once, one key at a time when
    ``ordered``; each offset committed once its message is handled or dead-lettered. ``messages``
    describe the payload in the AsyncAPI document."""
    consumption = _PIPELINES[broker]
    subscription = Subscription(
        consumption.pipeline,
        topic,
        group_id=group_id,
        concurrency=concurrency,
        ordered=ordered,
        policy=policy or consumption.policy,
        on_dead_letter=on_dead_letter,
    )
    consumption.pipeline.subscriptions[topic] = subscription
    _SUBSCRIBED.setdefault(broker, {})[topic] = tuple(messages)

    async def consume(message: KafkaMessage) -> None:
        await handler(message)

    consume.__name__ = f"consume_{topic.replace('.', '_').replace('-', '_')}"
    consume.__doc__ = handler.__doc__
    broker.subscriber(
        topic,
        group_id=group_id,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        listener=subscription,
        **options,
    )(consume)
    return subscription


def subscribe_events(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    events: TopicEvents,
    handler: EventHandler,
    on_dead_letter: OnDeadLetter | None = None,
) -> Subscription:
    """Consume the events of ``topic`` (see :func:`subscribe`), one account at a time: each is parsed
    and handed to ``handler``; event types this version does not know are skipped."""

    async def consume(message: KafkaMessage) -> None:
        event = events.parse(message.body)
        if event is None:
            _log.debug("event.skipped", topic=topic, event_type=message.headers.get(HEADER_EVENT_TYPE))
            return
        await handler(event)

    consume.__doc__ = f"{', '.join(t.__name__ for t in events.types)} from {topic}"
    return subscribe(
        broker,
        topic,
        group_id=group_id,
        handler=consume,
        on_dead_letter=on_dead_letter,
        messages=events.types,
    )


@dataclass(frozen=True, slots=True)
class _Consumption:
    pipeline: Pipeline
    policy: RetryPolicy


_PIPELINES: WeakKeyDictionary[KafkaBroker, _Consumption] = WeakKeyDictionary()


KAFKA_PING_TIMEOUT_S: Final = 2.0


def broker_ping(broker: KafkaBroker) -> Callable[[], Awaitable[None]]:
    """Readiness: the broker answers."""

    async def ready() -> None:
        if not await broker.ping(KAFKA_PING_TIMEOUT_S):
            raise ConnectionError("the Kafka broker does not answer")

    return ready
