"""Connecting Stripe: the key check, the pending connection, and the OAuth callback that completes it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from connector.domain.connection import OFFER_FEATURES
from connector.domain.refusals import ConnectionRefused, RefusalCode, processor_unavailable, rate_limited
from connector.service.authorize_stripe import (
    AuthorizationResult,
    StripeCallback,
    complete_stripe_authorization,
)
from connector.service.connect_stripe import AwaitingAuthorization, StripeKeySubmission, connect_stripe
from connector.service.read_connection import read_connection
from connector_fakes import (
    OTHER_STRIPE_ACCOUNT,
    STRIPE_ACCOUNT,
    STRIPE_KEY,
    STRIPE_RESTRICTED_KEY,
    World,
    build_world,
)
from contracts.connections import ConnectionStatus
from contracts.events import Feature, Mode, ProcessorConnected, StripeAuthorizationRequired
from pydantic import SecretStr

ACCOUNT = "acc_1"


def submission(
    key: str = STRIPE_KEY, account_id: str = ACCOUNT, return_url: str | None = "https://app.example/done"
) -> StripeKeySubmission:
    return StripeKeySubmission(
        account_id=account_id,
        api_key=SecretStr(key),
        contact_email="owner@acme.example",
        return_url=return_url,
    )


def state_of(pending: AwaitingAuthorization) -> str:
    return parse_qs(urlsplit(pending.authorize_url).query)["state"][0]


async def test_a_valid_key_opens_a_pending_connection_and_asks_for_authorization(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())

    stored = await world.connections.get(pending.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.AWAITING_AUTHORIZATION
    assert (stored.mode, pending.mode) == (Mode.TEST, Mode.TEST)
    assert stored.processor_account_id == STRIPE_ACCOUNT
    assert stored.credentials_ciphertext is not None
    assert STRIPE_KEY not in stored.credentials_ciphertext
    assert world.cipher.decrypt(stored.credentials_ciphertext).api_key.get_secret_value() == STRIPE_KEY
    [announcement] = world.publisher.events()
    assert isinstance(announcement, StripeAuthorizationRequired)
    assert announcement.authorize_url == pending.authorize_url
    assert world.connections.documents[pending.connection_id].outbox == []
    # Only the state's digest is stored.
    assert state_of(pending) not in world.oauth_states.grants


async def test_a_restricted_key_must_read_every_imported_resource(world: World) -> None:
    world.stripe.unreadable = ["invoices", "coupons"]

    with pytest.raises(ConnectionRefused) as refused:
        await connect_stripe(world.deps, submission(STRIPE_RESTRICTED_KEY))

    assert refused.value.code is RefusalCode.INSUFFICIENT_PERMISSIONS
    assert refused.value.missing_permissions == ("invoices", "coupons")
    assert "invoices" in refused.value.message
    assert "coupons" in refused.value.message
    assert world.connections.documents == {}
    assert world.publisher.published == []


async def test_a_secret_key_is_not_asked_about_permissions(world: World) -> None:
    await connect_stripe(world.deps, submission())

    assert world.stripe.calls == ["account"]


@pytest.mark.parametrize("refusal", [processor_unavailable("Stripe", 30), rate_limited("Stripe", 2)])
async def test_a_processor_failure_stores_nothing(world: World, refusal: ConnectionRefused) -> None:
    world.stripe.refusal = refusal

    with pytest.raises(ConnectionRefused) as refused:
        await connect_stripe(world.deps, submission())

    assert refused.value is refusal
    assert world.connections.documents == {}
    assert world.oauth_states.grants == {}
    assert world.publisher.published == []


async def test_format_is_checked_before_asking_stripe(world: World) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        await connect_stripe(world.deps, submission("pk_test_51Publishable0000000000"))

    assert refused.value.code is RefusalCode.PUBLISHABLE_KEY
    assert world.stripe.calls == []


async def test_without_a_connect_platform_stripe_cannot_be_connected() -> None:
    world = build_world(client_id=None)

    with pytest.raises(ConnectionRefused) as refused:
        await connect_stripe(world.deps, submission())

    assert refused.value.code is RefusalCode.STRIPE_CONNECT_UNAVAILABLE
    assert world.stripe.calls == []


async def test_submitting_again_replaces_the_pending_connection_and_its_state(world: World) -> None:
    first = await connect_stripe(world.deps, submission())
    second = await connect_stripe(world.deps, submission())

    old = await world.connections.get(first.connection_id)
    assert old is not None
    assert old.status is ConnectionStatus.DISCONNECTED
    assert old.credentials_ciphertext is None
    assert (await world.connections.active(ACCOUNT)) == await world.connections.get(second.connection_id)
    with pytest.raises(ConnectionRefused) as refused:
        await complete_stripe_authorization(world.deps, StripeCallback(state=state_of(first), code="c"))
    assert refused.value.code is RefusalCode.INVALID_STATE


async def test_the_callback_connects_and_starts_the_import(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.grant("code_ok")

    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state=state_of(pending), code="code_ok")
    )

    assert outcome.result is AuthorizationResult.CONNECTED
    assert outcome.return_url == "https://app.example/done"
    stored = await world.connections.get(pending.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.CONNECTED
    assert stored.connected_at == world.clock.now
    assert stored.credentials_ciphertext is not None
    credentials = world.cipher.decrypt(stored.credentials_ciphertext)
    assert credentials.api_key.get_secret_value() == STRIPE_KEY
    assert credentials.oauth_access_token is not None
    [connected] = world.publisher.events(ProcessorConnected)
    assert isinstance(connected, ProcessorConnected)
    assert (
        connected.import_id == outcome.import_id == (stored.latest_import and stored.latest_import.import_id)
    )
    assert (connected.connection_id, connected.processor_account_id, connected.mode) == (
        pending.connection_id,
        STRIPE_ACCOUNT,
        Mode.TEST,
    )
    assert connected.contact_email == "owner@acme.example"


async def test_a_replayed_state_changes_nothing(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.grant("code_ok")
    await complete_stripe_authorization(world.deps, StripeCallback(state=state_of(pending), code="code_ok"))
    before = (await world.connections.get(pending.connection_id), len(world.publisher.published))
    world.stripe.grant("code_again")

    with pytest.raises(ConnectionRefused) as refused:
        await complete_stripe_authorization(
            world.deps, StripeCallback(state=state_of(pending), code="code_again")
        )

    assert refused.value.code is RefusalCode.INVALID_STATE
    assert (await world.connections.get(pending.connection_id), len(world.publisher.published)) == before


@pytest.mark.parametrize("state", [None, "", "forged-state-value", "x" * 43])
async def test_a_missing_or_forged_state_changes_nothing(world: World, state: str | None) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.grant("code_ok")

    with pytest.raises(ConnectionRefused) as refused:
        await complete_stripe_authorization(world.deps, StripeCallback(state=state, code="code_ok"))

    assert refused.value.code is RefusalCode.INVALID_STATE
    stored = await world.connections.get(pending.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.AWAITING_AUTHORIZATION
    assert "oauth/token" not in world.stripe.calls


async def test_an_expired_state_changes_nothing(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.grant("code_ok")
    world.clock.advance(minutes=10, seconds=1)

    with pytest.raises(ConnectionRefused) as refused:
        await complete_stripe_authorization(
            world.deps, StripeCallback(state=state_of(pending), code="code_ok")
        )

    assert refused.value.code is RefusalCode.INVALID_STATE
    stored = await world.connections.get(pending.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.AWAITING_AUTHORIZATION
    assert "oauth/token" not in world.stripe.calls


async def test_a_state_still_valid_just_before_expiry(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.grant("code_ok")
    world.clock.advance(minutes=9, seconds=59)

    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state=state_of(pending), code="code_ok")
    )

    assert outcome.result is AuthorizationResult.CONNECTED


async def test_authorizing_another_stripe_account_is_a_mismatch(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.grant("code_other", stripe_user_id=OTHER_STRIPE_ACCOUNT)

    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state=state_of(pending), code="code_other")
    )

    assert (outcome.result, outcome.code) == (AuthorizationResult.ERROR, RefusalCode.ACCOUNT_MISMATCH)
    stored = await world.connections.get(pending.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.DISCONNECTED
    assert stored.credentials_ciphertext is None
    assert world.publisher.events(ProcessorConnected) == []


async def test_denying_access_ends_the_pending_connection(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())

    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state=state_of(pending), error="access_denied")
    )

    assert (outcome.result, outcome.code) == (AuthorizationResult.DENIED, RefusalCode.AUTHORIZATION_DENIED)
    stored = await world.connections.get(pending.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.DISCONNECTED
    assert stored.credentials_ciphertext is None
    assert "oauth/token" not in world.stripe.calls


async def test_a_failed_code_exchange_is_reported_to_the_browser(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.exchange_refusal = processor_unavailable("Stripe")

    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state=state_of(pending), code="c")
    )

    assert (outcome.result, outcome.code) == (AuthorizationResult.ERROR, RefusalCode.PROCESSOR_UNAVAILABLE)


async def test_a_connected_account_cannot_connect_again(world: World) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.grant("code_ok")
    await complete_stripe_authorization(world.deps, StripeCallback(state=state_of(pending), code="code_ok"))
    world.stripe.calls.clear()

    with pytest.raises(ConnectionRefused) as refused:
        await connect_stripe(world.deps, submission())

    assert refused.value.code is RefusalCode.ALREADY_CONNECTED
    assert world.stripe.calls == []


async def test_a_callback_after_disconnecting_changes_nothing(world: World) -> None:
    from connector.service.disconnect import disconnect

    pending = await connect_stripe(world.deps, submission())
    await disconnect(world.deps, ACCOUNT)
    world.stripe.grant("code_ok")

    with pytest.raises(ConnectionRefused) as refused:
        await complete_stripe_authorization(
            world.deps, StripeCallback(state=state_of(pending), code="code_ok")
        )

    assert refused.value.code is RefusalCode.INVALID_STATE


@pytest.mark.parametrize(("scope", "offers_on"), [("read_write", True), ("read_only", False)])
async def test_offers_are_on_only_where_the_grant_may_write(
    world: World, scope: str, offers_on: bool
) -> None:
    pending = await connect_stripe(world.deps, submission())
    world.stripe.grant("code_ok", scope=scope)

    await complete_stripe_authorization(world.deps, StripeCallback(state=state_of(pending), code="code_ok"))

    summary = await read_connection(world.deps, ACCOUNT)
    offers = {summary.features[Feature.COUPON_OFFERS], summary.features[Feature.TRIAL_EXTENSION_OFFERS]}
    assert offers == {offers_on}
    assert summary.features[Feature.PAST_CANCELLATIONS]
    expected = {} if offers_on else dict.fromkeys(OFFER_FEATURES, "read_only_grant")
    assert summary.feature_reasons == expected
