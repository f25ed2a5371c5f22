"""The `/_sandbox/` control API: faults, stats, deletions mid-import, settings, reset."""

from __future__ import annotations

import http.client
import socket
import time
from typing import Any

import pytest
from sandbox.combined import CombinedApp
from sandbox.server import BackgroundServer
from sandbox_kit import Http

from sandbox import (
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_SITE,
    SAMPLE_STRIPE_KEY,
    Dataset,
    SandboxAdmin,
    SandboxHTTPError,
    create_chargebee_app,
    create_stripe_app,
    start_sandbox,
)

SITE = f"/sites/{SAMPLE_CHARGEBEE_SITE}/api/v2"


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500, 502, 503])
def test_stripe_fault_answers_the_status_then_recovers(
    stripe_api: Http, stripe_server: BackgroundServer, status: int
) -> None:
    admin = SandboxAdmin(stripe_server.url)
    admin.add_fault("/v1/customers", status=status, count=2, retry_after_s=3, should_retry=True)

    first = stripe_api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY)
    second = stripe_api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY)
    other = stripe_api.get("/v1/invoices", bearer=SAMPLE_STRIPE_KEY)
    third = stripe_api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY)

    assert (first.status, second.status, other.status, third.status) == (status, status, 200, 200)
    assert first.headers["Retry-After"] == "3"
    assert first.headers["Stripe-Should-Retry"] == "true"
    assert first.headers["Request-Id"].startswith("req_")
    error = first.body["error"]
    assert error["type"] in ("invalid_request_error", "api_error")
    if status == 429:
        assert error["code"] == "rate_limit"
    assert admin.faults() == []
    assert admin.stats()["faults_served"] == 2


def test_chargebee_fault_by_api_relative_prefix(
    chargebee_api: Http, chargebee_server: BackgroundServer
) -> None:
    admin = SandboxAdmin(chargebee_server.url)
    admin.add_fault("/subscriptions", status=429, retry_after_s=1)
    reply = chargebee_api.get(f"{SITE}/subscriptions", basic=SAMPLE_CHARGEBEE_KEY)
    assert reply.status == 429
    assert reply.body["api_error_code"] == "api_request_limit_exceeded"
    assert reply.headers["Retry-After"] == "1"
    assert chargebee_api.get(f"{SITE}/subscriptions", basic=SAMPLE_CHARGEBEE_KEY).status == 200
    admin.add_fault(f"{SITE}/invoices", status=503, method="GET")
    assert chargebee_api.get(f"{SITE}/invoices", basic=SAMPLE_CHARGEBEE_KEY).body["http_status_code"] == 503


def test_delay_fault_makes_a_client_time_out(stripe_server: BackgroundServer) -> None:
    admin = SandboxAdmin(stripe_server.url)
    admin.add_fault("/v1/account", delay_s=1.0)
    host, port = stripe_server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=0.3)
    started = time.monotonic()
    conn.request("GET", "/v1/account", headers={"Authorization": f"Bearer {SAMPLE_STRIPE_KEY}"})
    with pytest.raises((TimeoutError, socket.timeout)):
        conn.getresponse()
    assert time.monotonic() - started < 1.0
    conn.close()
    admin.clear_faults()


def test_delay_without_status_then_answers_normally(
    stripe_api: Http, stripe_server: BackgroundServer
) -> None:
    SandboxAdmin(stripe_server.url).add_fault("/v1/account", delay_s=0.2)
    started = time.monotonic()
    assert stripe_api.get("/v1/account", bearer=SAMPLE_STRIPE_KEY).status == 200
    assert time.monotonic() - started >= 0.2


def test_close_connection_fault(stripe_api: Http, stripe_server: BackgroundServer) -> None:
    SandboxAdmin(stripe_server.url).add_fault("/v1/customers", close_connection=True)
    host, port = stripe_server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/v1/customers", headers={"Authorization": f"Bearer {SAMPLE_STRIPE_KEY}"})
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    assert stripe_api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 200


def test_invalid_fault_is_refused(stripe_server: BackgroundServer) -> None:
    admin = SandboxAdmin(stripe_server.url)
    with pytest.raises(SandboxHTTPError) as raised:
        admin.add_fault("/v1/customers")
    assert raised.value.status == 422
    with pytest.raises(SandboxHTTPError):
        admin.add_fault("/v1/customers", status=418)


def test_stats_count_requests_per_endpoint_and_reset(
    stripe_api: Http, stripe_server: BackgroundServer
) -> None:
    admin = SandboxAdmin(stripe_server.url)
    admin.reset_stats()
    for _ in range(3):
        stripe_api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY)
    stripe_api.get("/v1/customers/cus_x", bearer=SAMPLE_STRIPE_KEY)
    stripe_api.get("/v1/customers")

    stats = admin.stats()

    assert stats["requests_total"] == 5
    assert stats["by_endpoint"] == {"GET /v1/customers": 4, "GET /v1/customers/{object_id}": 1}
    assert stats["by_status"] == {"200": 3, "404": 1, "401": 1}
    assert stats["by_scope"] == {"acct_1SandboxAcme0001": 4}
    assert stats["rate_limited"] == 0
    # Per endpoint, requests answered per whole second since the first request (JSON keys).
    assert {endpoint: sum(seconds.values()) for endpoint, seconds in stats["timeline"].items()} == {
        "GET /v1/customers": 4,
        "GET /v1/customers/{object_id}": 1,
    }
    assert all(int(second) >= 0 for seconds in stats["timeline"].values() for second in seconds)
    admin.reset_stats()
    assert admin.stats()["requests_total"] == 0
    assert admin.stats()["timeline"] == {}


def walk_ids(api: Http, *, delete_after_first_page: Any = None) -> list[str]:
    ids: list[str] = []
    params: dict[str, Any] = {"limit": 10}
    while True:
        body = api.get("/v1/customers", params=params, bearer=SAMPLE_STRIPE_KEY).body
        ids += [c["id"] for c in body["data"]]
        if delete_after_first_page is not None:
            delete_after_first_page()
            delete_after_first_page = None
        if not body["has_more"]:
            return ids
        params["starting_after"] = ids[-1]


def test_deleting_mid_import(stripe_api: Http, stripe_server: BackgroundServer, dataset: Dataset) -> None:
    admin = SandboxAdmin(stripe_server.url)
    customers = [c["id"] for c in dataset.stripe["customers"]]
    cursor, later = customers[9], customers[30]

    def delete() -> None:
        result = admin.delete("customers", [cursor, later, "cus_unknown"])
        assert result == {"deleted": [cursor, later], "missing": ["cus_unknown"]}

    ids = walk_ids(stripe_api, delete_after_first_page=delete)

    assert later not in ids  # gone before its page was read
    assert cursor in ids  # already read; the cursor on it still works
    assert len(ids) == len(set(ids)) == len(customers) - 1
    assert stripe_api.get(f"/v1/customers/{later}", bearer=SAMPLE_STRIPE_KEY).body == {
        "id": later,
        "object": "customer",
        "deleted": True,
    }
    admin.reset()
    assert len(walk_ids(stripe_api)) == len(customers)


def test_chargebee_deletion_marks_deleted(
    chargebee_api: Http, chargebee_server: BackgroundServer, dataset: Dataset
) -> None:
    sub = next(s for s in dataset.chargebee["subscriptions"] if not s["deleted"])
    SandboxAdmin(chargebee_server.url).delete("subscriptions", [sub["id"]], site=SAMPLE_CHARGEBEE_SITE)

    listed = chargebee_api.get(
        f"{SITE}/subscriptions", params={"limit": 100}, basic=SAMPLE_CHARGEBEE_KEY
    ).body
    with_deleted = chargebee_api.get(
        f"{SITE}/subscriptions", params={"limit": 100, "include_deleted": "true"}, basic=SAMPLE_CHARGEBEE_KEY
    ).body

    assert sub["id"] not in {e["subscription"]["id"] for e in listed["list"]}
    marked = [e["subscription"] for e in with_deleted["list"] if e["subscription"]["id"] == sub["id"]]
    assert marked[0]["deleted"] is True
    assert sub["deleted"] is False  # the dataset itself is untouched


def test_settings_latency(stripe_api: Http, stripe_server: BackgroundServer) -> None:
    admin = SandboxAdmin(stripe_server.url)
    settings = admin.update_settings(latency_s=0.25)
    assert settings["latency_s"] == 0.25
    started = time.monotonic()
    assert stripe_api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 200
    assert time.monotonic() - started >= 0.25
    admin.reset()
    assert admin.settings()["latency_s"] == 0.0
    with pytest.raises(SandboxHTTPError):
        admin.update_settings(colour="blue")


def test_start_sandbox_serves_both_and_gives_the_service_env() -> None:
    with start_sandbox() as running:
        env = running.env()
        assert env["STRIPE_API_BASE"] == env["STRIPE_CONNECT_BASE"] == running.stripe_url
        assert env["CHARGEBEE_API_URL_TEMPLATE"] == running.chargebee_url + "/sites/{site}/api/v2"
        api = Http(env["CHARGEBEE_API_URL_TEMPLATE"].split("/sites/")[0])
        path = "/" + env["CHARGEBEE_API_URL_TEMPLATE"].format(site=SAMPLE_CHARGEBEE_SITE).split("/", 3)[3]
        assert api.get(path + "/customers", basic=SAMPLE_CHARGEBEE_KEY).status == 200


def test_both_fakes_on_one_port(dataset: Dataset) -> None:
    app = CombinedApp(create_stripe_app(dataset), create_chargebee_app(dataset))
    with BackgroundServer(app) as server:
        api = Http(server.url)
        assert api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 200
        assert api.get(f"{SITE}/customers", basic=SAMPLE_CHARGEBEE_KEY).status == 200
        chargebee_admin = SandboxAdmin(server.url, admin_path="/_sandbox/chargebee")
        assert chargebee_admin.stats()["by_endpoint"] == {"GET /sites/{site}/api/v2/customers": 1}
        assert SandboxAdmin(server.url).stats()["by_endpoint"] == {"GET /v1/customers": 1}
        chargebee_admin.add_fault("/customers", status=503)
        assert api.get(f"{SITE}/customers", basic=SAMPLE_CHARGEBEE_KEY).status == 503
