"""The onboarding gateway's requests from ``onboarding.requests.v1``: parse, delegate, log one line.

Parsing is stricter than the contract's: a request that carries a secret in plain text, or that does
not validate, is still answered (``ConnectionRejected``) when it names its account, so the gateway
is never left waiting. Only a message naming no account goes to the dead-letter topic.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, Final, Literal
from uuid import UUID, uuid4

import structlog
from contracts.errors import MalformedEvent
from contracts.events import ONBOARDING_REQUEST_EVENTS, Event, TopicEvents
from contracts.identifiers import ACCOUNT_ID_PATTERN
from contracts.runtime.kafka import subscribe_events
from contracts.runtime.logging import get_logger
from contracts.topics import ONBOARDING_REQUESTS
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from connector.domain.refusals import ConnectionRefused, RefusalCode, plaintext_secret
from connector.entrypoints.metrics import ONBOARDING_REQUESTS as ONBOARDING_REQUESTS_METRIC
from connector.service.dependencies import Dependencies
from connector.service.onboarding_intake import handle_onboarding_request, reject_request

#: One group per subscription: scaling or replaying it moves no other consumer of the connector.
CONSUMER_GROUP: Final = "connector-onboarding"
#: Fields that would hold a secret in plain text; the contract only has sealed ones.
PLAINTEXT_SECRET_FIELDS: Final = frozenset({"api_key", "secret", "password", "token", "access_token"})

_log = get_logger("connector.onboarding")


class UnacceptableRequest(Event):
    """An onboarding request refused while parsing it (never published as such)."""

    type: Literal["connector.UnacceptableRequest"] = "connector.UnacceptableRequest"
    request_type: str
    code: RefusalCode
    message: str


class GuardedOnboardingRequests(TopicEvents):
    def __init__(self) -> None:
        super().__init__(*ONBOARDING_REQUEST_EVENTS.types)

    def parse(self, body: bytes | str | Mapping[str, Any]) -> Event | None:
        raw = dict(body) if isinstance(body, Mapping) else json.loads(body)
        if not isinstance(raw, dict):
            raise MalformedEvent("an onboarding request is a JSON object")
        if raw.get("type") not in {member.model_fields["type"].default for member in self.types}:
            return None
        if PLAINTEXT_SECRET_FIELDS & raw.keys():
            return _unacceptable(raw, plaintext_secret())
        try:
            return super().parse(raw)
        except ValidationError as error:
            fields = sorted({".".join(str(part) for part in item["loc"]) for item in error.errors()})
            return _unacceptable(
                raw,
                ConnectionRefused(
                    RefusalCode.INVALID_REQUEST,
                    "The request is missing or has invalid fields: " + ", ".join(fields) + ".",
                ),
            )


def _unacceptable(raw: Mapping[str, Any], refusal: ConnectionRefused) -> UnacceptableRequest:
    account_id = raw.get("account_id")
    if not isinstance(account_id, str) or re.fullmatch(ACCOUNT_ID_PATTERN, account_id) is None:
        raise MalformedEvent("an onboarding request without a valid account_id cannot be answered")
    try:
        event_id = UUID(str(raw.get("event_id")))
    except ValueError:
        event_id = uuid4()
    return UnacceptableRequest(
        event_id=event_id,
        account_id=account_id,
        request_type=str(raw.get("type")),
        code=refusal.code,
        message=refusal.message,
    )


def subscribe_onboarding_requests(broker: KafkaBroker, deps: Dependencies) -> None:
    async def handle(request: Event) -> None:
        started = time.perf_counter()
        request_type = request.request_type if isinstance(request, UnacceptableRequest) else request.type
        outcome = "failed"
        with structlog.contextvars.bound_contextvars(
            account_id=request.account_id, request_event_id=str(request.event_id)
        ):
            try:
                if isinstance(request, UnacceptableRequest):
                    refusal = ConnectionRefused(request.code, request.message)
                    await reject_request(
                        deps,
                        account_id=request.account_id,
                        request_event_id=request.event_id,
                        refusal=refusal,
                    )
                    outcome = request.code.value
                else:
                    outcome = await handle_onboarding_request(deps, request)
            finally:
                ONBOARDING_REQUESTS_METRIC.labels(type=request_type, outcome=outcome).inc()
                log = _log.error if outcome == "failed" else _log.info
                log(
                    "onboarding.request",
                    request_type=request_type,
                    outcome=outcome,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )

    subscribe_events(
        broker,
        ONBOARDING_REQUESTS,
        group_id=CONSUMER_GROUP,
        events=GuardedOnboardingRequests(),
        handler=handle,
    )
