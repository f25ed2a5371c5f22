"""Grants our platform no longer uses are revoked at Stripe: on disconnect, on an account mismatch,
and when an authorization lands for a connection that ended meanwhile; later if Stripe is down."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from connector.domain.connection import Connection
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.authorize_stripe import (
    AuthorizationResult,
    StripeCallback,
    complete_stripe_authorization,
)
from connector.service.connect_chargebee import ChargebeeCredentialsSubmission, connect_chargebee
from connector.service.connect_stripe import AwaitingAuthorization, StripeKeySubmission, connect_stripe
from connector.service.disconnect import disconnect
from connector.service.revoke_grants import revoke_pending_grants
from connector_fakes import CHARGEBEE_KEY, OTHER_STRIPE_ACCOUNT, STRIPE_ACCOUNT, STRIPE_KEY, World
from contracts.connections import ConnectionStatus
from pydantic import SecretStr

ACCOUNT = "acc_grants"


async def pending_stripe(world: World) -> AwaitingAuthorization:
    submission = StripeKeySubmission(
        account_id=ACCOUNT, api_key=SecretStr(STRIPE_KEY), contact_email="owner@acme.example"
    )
    return await connect_stripe(world.deps, submission)


def state_of(pending: AwaitingAuthorization) -> str:
    return parse_qs(urlsplit(pending.authorize_url).query)["state"][0]


async def connected_stripe(world: World) -> str:
    pending = await pending_stripe(world)
    world.stripe.grant("code_ok")
    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state=state_of(pending), code="code_ok")
    )
    assert outcome.result is AuthorizationResult.CONNECTED
    assert world.stripe.grants == {STRIPE_ACCOUNT}
    return pending.connection_id


async def test_disconnecting_a_connected_stripe_account_revokes_its_grant(world: World) -> None:
    connection_id = await connected_stripe(world)

    await disconnect(world.deps, ACCOUNT)

    assert world.stripe.grants == set()
    assert await world.connections.grants_to_revoke(limit=10) == []
    stored = await world.connections.get(connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.DISCONNECTED


async def test_a_revocation_stripe_cannot_take_is_kept_and_done_by_the_relay(world: World) -> None:
    connection_id = await connected_stripe(world)
    world.stripe.deauthorize_unavailable = True

    await disconnect(world.deps, ACCOUNT)  # does not wait for Stripe

    stored = await world.connections.get(connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.DISCONNECTED
    assert stored.credentials_ciphertext is None
    assert world.stripe.grants == {STRIPE_ACCOUNT}
    assert await world.connections.grants_to_revoke(limit=10) == [(connection_id, STRIPE_ACCOUNT)]
    assert await revoke_pending_grants(world.deps) == 0  # still down: kept

    world.stripe.deauthorize_unavailable = False
    world.clock.advance(seconds=5)  # its next attempt is due
    assert await revoke_pending_grants(world.deps) == 1

    assert world.stripe.grants == set()
    assert await world.connections.grants_to_revoke(limit=10) == []


async def test_a_grant_the_owner_already_revoked_counts_as_revoked(world: World) -> None:
    await connected_stripe(world)
    world.stripe.grants.clear()  # revoked in the Stripe Dashboard

    await disconnect(world.deps, ACCOUNT)

    assert world.stripe.calls.count("oauth/deauthorize") == 1
    assert await world.connections.grants_to_revoke(limit=10) == []


async def test_authorizing_another_account_revokes_that_accounts_grant(world: World) -> None:
    pending = await pending_stripe(world)
    world.stripe.grant("code_other", stripe_user_id=OTHER_STRIPE_ACCOUNT)

    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state=state_of(pending), code="code_other")
    )

    assert outcome.code is RefusalCode.ACCOUNT_MISMATCH
    assert world.stripe.grants == set()
    assert await world.connections.grants_to_revoke(limit=10) == []


async def test_an_authorization_for_a_connection_that_ended_meanwhile_is_revoked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    pending = await pending_stripe(world)
    world.stripe.grant("code_ok")

    async def ended_meanwhile(connection_id: str, **_: object) -> Connection | None:
        return None  # disconnected between the code exchange and recording it

    monkeypatch.setattr(world.connections, "authorize", ended_meanwhile)

    with pytest.raises(ConnectionRefused) as refused:
        await complete_stripe_authorization(
            world.deps, StripeCallback(state=state_of(pending), code="code_ok")
        )

    assert refused.value.code is RefusalCode.INVALID_STATE
    assert world.stripe.grants == set()


async def test_nothing_is_revoked_where_nothing_was_granted(world: World) -> None:
    await pending_stripe(world)
    await disconnect(world.deps, ACCOUNT)  # still awaiting authorization: no grant yet
    await connect_chargebee(
        world.deps,
        ChargebeeCredentialsSubmission(
            account_id=ACCOUNT,
            site="acme-test",
            api_key=SecretStr(CHARGEBEE_KEY),
            contact_email="b@acme.example",
        ),
    )
    await disconnect(world.deps, ACCOUNT)

    assert "oauth/deauthorize" not in world.stripe.calls
    assert await world.connections.grants_to_revoke(limit=10) == []


async def test_a_revocation_that_keeps_failing_backs_off_alone_and_never_blocks_the_others(
    world: World,
) -> None:
    ids = []
    for account in ("acc_broken", "acc_fine_1", "acc_fine_2"):
        connection = Connection(
            connection_id=f"con_{account}",
            account_id=account,
            status=ConnectionStatus.DISCONNECTED,
            created_at=world.clock.now,
        )
        await world.connections.open(connection, [])
        await world.connections.revoke_grant_later(connection.connection_id, f"acct_{account}")
        world.stripe.grants.add(f"acct_{account}")
        ids.append(connection.connection_id)
    world.stripe.deauthorize_failing = {"acct_acc_broken"}

    assert await revoke_pending_grants(world.deps) == 2

    assert world.stripe.grants == {"acct_acc_broken"}
    assert await world.connections.grants_to_revoke(limit=10) == [(ids[0], "acct_acc_broken")]
    # Backing off on its own: not tried again before its time, then at longer and longer intervals.
    tried = world.stripe.calls.count("oauth/deauthorize")
    assert await revoke_pending_grants(world.deps) == 0
    assert world.stripe.calls.count("oauth/deauthorize") == tried
    waits = []
    for _ in range(4):
        due = world.connections.documents[ids[0]].revoke_retry_at
        assert due is not None
        waits.append((due - world.clock.now).total_seconds())
        world.clock.now = due
        assert await revoke_pending_grants(world.deps) == 0
    assert waits == [5.0, 10.0, 20.0, 40.0]
    assert world.connections.documents[ids[0]].revoke_attempts == 5

    world.stripe.deauthorize_failing = set()
    world.clock.now = world.connections.documents[ids[0]].revoke_retry_at or world.clock.now
    assert await revoke_pending_grants(world.deps) == 1
    assert world.stripe.grants == set()
    assert await world.connections.grants_to_revoke(limit=10) == []
