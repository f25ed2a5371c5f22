"""Fuzzing the webhook routes: no answer is a server error, and nothing refused reaches the importer.

Fuzzed bodies and headers carry no valid signature and no connection's credentials, so every call
must be refused (400 or 401 in the error shape) and nothing may be queued or stored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import schemathesis
from connector_fakes import RecordingSyncQueue, SyncStatesByConnection, build_world
from connector_unit_kit import app_over, webhook_intake
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

WORLD = build_world()
QUEUE = RecordingSyncQueue()
WORLD.deps = dataclasses.replace(
    WORLD.deps,
    webhooks=webhook_intake(WORLD, QUEUE, "whsec_fuzz_0123456789abcdef"),
    sync_states=SyncStatesByConnection(),
)
APP = app_over(WORLD)

schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex="^/v1/webhooks/")


def test_the_webhook_routes_are_in_the_document() -> None:
    paths = APP.openapi()["paths"]
    assert {"/v1/webhooks/stripe", "/v1/webhooks/chargebee/{connection_id}"} <= set(paths)


@schema.parametrize()
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.filterwarnings("ignore")
def test_fuzzed_webhooks_are_refused_without_a_server_error_or_a_change(case: schemathesis.Case[Any]) -> None:
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])

    assert response.status_code in (400, 401, 404, 405, 413, 415, 422), response.status_code
    assert set(response.json()["error"]) >= {"code", "message"}
    assert QUEUE.events == []
    assert WORLD.connections.documents == {}
    assert WORLD.publisher.events() == []
