"""Features by connection status, the OAuth state and the authorize URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from connector.domain.connection import connection_id_for_request, features_of, rejection_event_id
from connector.domain.oauth import StripeConnectPlatform, issue_state, state_digest, with_query
from contracts.connections import ConnectionStatus
from contracts.events import SKIP_DISABLED_FEATURES, Feature


def test_a_connected_processor_turns_every_feature_on() -> None:
    assert all(features_of(ConnectionStatus.CONNECTED).values())


def test_without_a_processor_exactly_the_skip_list_is_off() -> None:
    for status in (
        ConnectionStatus.SKIPPED,
        ConnectionStatus.AWAITING_AUTHORIZATION,
        ConnectionStatus.DISCONNECTED,
    ):
        features = features_of(status)
        assert {f for f, on in features.items() if not on} == set(SKIP_DISABLED_FEATURES)
        assert features[Feature.CHURN_METRICS] is True


def test_states_are_random_stored_only_as_digests_and_expire() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    first = issue_state("con_1", "acc_1", now, timedelta(minutes=10))
    second = issue_state("con_1", "acc_1", now, timedelta(minutes=10))

    assert first.state != second.state
    assert len(first.state) >= 40
    assert first.grant.state_digest == state_digest(first.state) != first.state
    assert first.grant.expires_at == now + timedelta(minutes=10)
    assert (first.grant.connection_id, first.grant.account_id) == ("con_1", "acc_1")


def test_the_authorize_url_is_the_one_of_the_spec() -> None:
    platform = StripeConnectPlatform(
        client_id="ca_123",
        connect_base="https://connect.stripe.com",
        redirect_uri="https://api.example/v1/oauth/stripe/callback",
        state_ttl=timedelta(minutes=10),
    )

    url = urlsplit(platform.authorize_url("st&ate"))

    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://connect.stripe.com/oauth/authorize"
    assert parse_qs(url.query) == {
        "response_type": ["code"],
        "client_id": ["ca_123"],
        "scope": ["read_write"],
        "state": ["st&ate"],
        "redirect_uri": ["https://api.example/v1/oauth/stripe/callback"],
    }


def test_the_return_url_keeps_its_own_query_and_fragment() -> None:
    assert (
        with_query(
            "https://app.example/onboard?step=2&status=old#top", status="error", code="account_mismatch"
        )
        == "https://app.example/onboard?step=2&status=error&code=account_mismatch#top"
    )


def test_ids_derived_from_a_request_are_stable_and_distinct() -> None:
    from uuid import uuid4

    request = uuid4()
    assert connection_id_for_request(request) == connection_id_for_request(request)
    assert connection_id_for_request(request) != connection_id_for_request(uuid4())
    assert rejection_event_id(request) == rejection_event_id(request) != request
