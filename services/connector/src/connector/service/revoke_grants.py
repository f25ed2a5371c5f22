"""Use case: revoke at Stripe the OAuth grants our platform no longer uses.

A Stripe account that authorized our platform keeps that grant until someone revokes it, so ending a
connection on our side alone would leave the platform able to read the account. A grant is to be
revoked when its connection is disconnected, when the person authorized another account than the
key's (``account_mismatch``), and when the authorization arrived for a connection that had ended
meanwhile. The account to revoke is recorded on the connection in the write that ended it; the
revocation is tried at once and, while Stripe cannot be asked, again by the relay.
"""

from __future__ import annotations

from typing import Final

from contracts.runtime.logging import get_logger

from connector.domain.oauth import GrantRevocationDeferred
from connector.service.context import Services

REVOCATION_BATCH_SIZE: Final = 50

_log = get_logger(__name__)


async def revoke_grant(services: Services, connection_id: str, stripe_user_id: str) -> bool:
    """Ask Stripe to revoke the grant; ``False`` if it must be tried again later."""
    try:
        had_grant = await services.stripe.deauthorize(stripe_user_id)
    except GrantRevocationDeferred as reason:
        _log.warning(
            "stripe_grant.revocation_deferred",
            connection_id=connection_id,
            stripe_account=stripe_user_id,
            reason=str(reason),
        )
        return False
    await services.connections.grant_revoked(connection_id, stripe_user_id)
    _log.info(
        "stripe_grant.revoked",
        connection_id=connection_id,
        stripe_account=stripe_user_id,
        had_grant=had_grant,
    )
    return True


async def revoke_pending_grants(services: Services) -> int:
    """Revoke the grants still recorded as to revoke; how many were."""
    revoked = 0
    for connection_id, stripe_user_id in await services.connections.grants_to_revoke(
        limit=REVOCATION_BATCH_SIZE
    ):
        if not await revoke_grant(services, connection_id, stripe_user_id):
            break  # Stripe cannot be asked now: the others wait for the next round too.
        revoked += 1
    return revoked
