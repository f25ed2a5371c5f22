"""Requests from the onboarding gateway: sealed secrets, answers on connections.v1, redeliveries."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from connector.adapters.sealed_box import seal
from connector.domain.connection import connection_id_for_request
from connector.domain.refusals import RefusalCode
from connector.entrypoints.onboarding_consumer import GuardedOnboardingRequests, UnacceptableRequest
from connector.service.onboarding_intake import handle_onboarding_request
from connector_fakes import ALL_TEST_SECRETS, CHARGEBEE_KEY, STRIPE_KEY, World, public_key_b64
from contracts.errors import MalformedEvent
from contracts.events import (
    ChargebeeCredentialsSubmitted,
    ConnectionRejected,
    ProcessorConnected,
    ProcessorSkipped,
    SkipRequested,
    StripeAuthorizationRequired,
    StripeKeySubmitted,
)

ACCOUNT = "acc_gw"


def sealed(world: World, secret: str) -> str:
    return seal(public_key_b64(world), secret)


async def test_a_sealed_stripe_key_is_opened_and_answered_with_the_authorize_url(world: World) -> None:
    request = StripeKeySubmitted(
        account_id=ACCOUNT, api_key_sealed=sealed(world, STRIPE_KEY), contact_email="o@a.example"
    )

    assert await handle_onboarding_request(world.deps, request) == "awaiting_authorization"

    [answer] = world.publisher.events()
    assert isinstance(answer, StripeAuthorizationRequired)
    assert answer.connection_id == connection_id_for_request(request.event_id)


async def test_sealed_chargebee_credentials_connect(world: World) -> None:
    request = ChargebeeCredentialsSubmitted(
        account_id=ACCOUNT,
        site="acme-test",
        api_key_sealed=sealed(world, CHARGEBEE_KEY),
        contact_email="o@a.example",
    )

    assert await handle_onboarding_request(world.deps, request) == "connected"

    [answer] = world.publisher.events()
    assert isinstance(answer, ProcessorConnected)
    assert answer.import_id


async def test_a_redelivered_request_is_not_carried_out_twice(world: World) -> None:
    request = ChargebeeCredentialsSubmitted(
        account_id=ACCOUNT,
        site="acme-test",
        api_key_sealed=sealed(world, CHARGEBEE_KEY),
        contact_email="o@a.example",
    )
    await handle_onboarding_request(world.deps, request)

    assert await handle_onboarding_request(world.deps, request) == "replayed"

    assert len(world.publisher.events()) == 1
    assert world.publisher.events(ConnectionRejected) == []


async def test_skip_over_kafka(world: World) -> None:
    assert await handle_onboarding_request(world.deps, SkipRequested(account_id=ACCOUNT)) == "skipped"
    assert isinstance(world.publisher.events()[0], ProcessorSkipped)


@pytest.mark.parametrize("secret", [STRIPE_KEY, "  " + STRIPE_KEY, "pk_test_51Publishable00000000"])
async def test_a_plaintext_key_in_the_sealed_field_is_refused_unused(world: World, secret: str) -> None:
    request = StripeKeySubmitted(account_id=ACCOUNT, api_key_sealed=secret, contact_email="o@a.example")

    assert await handle_onboarding_request(world.deps, request) == RefusalCode.PLAINTEXT_SECRET

    [answer] = world.publisher.events()
    assert isinstance(answer, ConnectionRejected)
    assert (answer.code, answer.request_event_id) == ("plaintext_secret", request.event_id)
    assert world.stripe.calls == []
    assert world.connections.documents == {}


async def test_a_plaintext_chargebee_key_is_refused_unused(world: World) -> None:
    request = ChargebeeCredentialsSubmitted(
        account_id=ACCOUNT, site="acme-test", api_key_sealed=CHARGEBEE_KEY, contact_email="o@a.example"
    )

    assert await handle_onboarding_request(world.deps, request) == RefusalCode.PLAINTEXT_SECRET
    assert world.chargebee.calls == []


async def test_a_box_sealed_to_another_key_is_refused(world: World) -> None:
    import base64

    from nacl.public import PrivateKey

    stranger = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    request = StripeKeySubmitted(
        account_id=ACCOUNT, api_key_sealed=seal(stranger, STRIPE_KEY), contact_email="o@a.example"
    )

    assert await handle_onboarding_request(world.deps, request) == RefusalCode.SEALED_SECRET_INVALID


async def test_refusals_carry_the_request_id_and_a_stable_event_id(world: World) -> None:
    request = StripeKeySubmitted(
        account_id=ACCOUNT,
        api_key_sealed=sealed(world, "pk_test_51Publishable00000000"),
        contact_email="o@a.example",
    )

    await handle_onboarding_request(world.deps, request)
    await handle_onboarding_request(world.deps, request)

    first, second = world.publisher.events(ConnectionRejected)
    assert isinstance(first, ConnectionRejected)
    assert first.code == "publishable_key"
    assert first.event_id == second.event_id
    assert first.request_event_id == request.event_id


def test_a_plaintext_secret_field_is_caught_while_parsing() -> None:
    body = {
        "type": "StripeKeySubmitted",
        "event_id": str(uuid4()),
        "account_id": ACCOUNT,
        "api_key": STRIPE_KEY,
        "contact_email": "o@a.example",
    }

    parsed = GuardedOnboardingRequests().parse(json.dumps(body).encode())

    assert isinstance(parsed, UnacceptableRequest)
    assert parsed.code is RefusalCode.PLAINTEXT_SECRET
    assert str(parsed.event_id) == body["event_id"]
    assert STRIPE_KEY not in parsed.model_dump_json()


def test_an_invalid_request_is_answered_but_one_without_account_is_dead_lettered() -> None:
    parsed = GuardedOnboardingRequests().parse(
        b'{"type": "ChargebeeCredentialsSubmitted", "account_id": "a1"}'
    )
    assert isinstance(parsed, UnacceptableRequest)
    assert parsed.code is RefusalCode.INVALID_REQUEST
    assert "api_key_sealed" in parsed.message
    assert "site" in parsed.message

    with pytest.raises(MalformedEvent):
        GuardedOnboardingRequests().parse(b'{"type": "SkipRequested"}')
    with pytest.raises(MalformedEvent):
        GuardedOnboardingRequests().parse(b"[1, 2]")
    assert GuardedOnboardingRequests().parse(b'{"type": "SomethingNew", "account_id": "a1"}') is None


@pytest.mark.parametrize("contact_email", ["not-an-email", "owner@", "a b@example.com"])
def test_a_request_with_an_invalid_contact_email_is_answered_with_a_refusal(contact_email: str) -> None:
    parsed = GuardedOnboardingRequests().parse(
        json.dumps(
            {
                "type": "SkipRequested",
                "account_id": "a1",
                "event_id": str(uuid4()),
                "contact_email": contact_email,
            }
        ).encode()
    )

    assert isinstance(parsed, UnacceptableRequest)
    assert parsed.code is RefusalCode.INVALID_REQUEST
    assert "contact_email" in parsed.message


def test_a_request_whose_account_id_holds_a_colon_is_dead_lettered_not_answered() -> None:
    with pytest.raises(MalformedEvent):
        GuardedOnboardingRequests().parse(
            b'{"type": "ChargebeeCredentialsSubmitted", "account_id": "acct:1", "site": "acme"}'
        )


def test_no_test_secret_reaches_an_answer(world: World) -> None:
    for _, event in world.publisher.published:
        assert not any(secret in event.model_dump_json() for secret in ALL_TEST_SECRETS)


async def test_a_return_url_off_the_allowed_hosts_is_rejected_and_nothing_stored(world: World) -> None:
    request = StripeKeySubmitted(
        account_id=ACCOUNT,
        api_key_sealed=sealed(world, STRIPE_KEY),
        contact_email="o@a.example",
        return_url="https://evil.example/phish",
    )

    assert await handle_onboarding_request(world.deps, request) == "invalid_return_url"

    [answer] = world.publisher.events()
    assert isinstance(answer, ConnectionRejected)
    assert answer.code == "invalid_return_url"
    assert world.connections.documents == {}
    assert world.stripe.calls == []
