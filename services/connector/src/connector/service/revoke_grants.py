"""Use case: revoke at Stripe the OAuth grants our platform no longer uses.

A Stripe account that authorized our platform keeps that grant until someone revokes it, so ending a
connection on our side alone would leave the platform able to read the account. A grant is to be
revoked when its connection is disconnected, when the person authorized another account than the
key's (``account_mismatch``), and when the authorization arrived for a connection that had ended
meanwhile. The account to revoke is recorded on the connection in the write that ended it; the
revocation is tried at once and, while Stripe cannot be asked, again by the relay. Each grant backs
off on its own (the relay's interval, doubling up to ``REVOCATION_RETRY_CAP_S``), so one that
keeps failing never holds up the others: a round tries every grant that is due.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from contracts.runtime.backoff import backoff_ceiling_s
from contracts.runtime.logging import get_logger

from connector.domain.oauth import GrantRevocationDeferred
from connector.service.dependencies import Dependencies

REVOCATION_BATCH_SIZE: Final = 50
REVOCATION_RETRY_CAP_S: Final = 3600.0

_log = get_logger(__name__)


async def revoke_grant(deps: Dependencies, connection_id: str, stripe_user_id: str) -> bool:
    """Ask Stripe to revoke the grant; ``False`` if it must be tried again later."""
    try:
        had_grant = await deps.stripe.deauthorize(stripe_user_id)
    except GrantRevocationDeferred as reason:
        now = deps.clock()
        attempts = await deps.connections.revocation_deferred(
            connection_id,
            stripe_user_id,
            retry_at=lambda attempts: now + revocation_backoff(attempts, deps.retry_base),
        )
        _log.warning(
            "stripe_grant.revocation_deferred",
            connection_id=connection_id,
            stripe_account=stripe_user_id,
            reason=str(reason),
            attempts=attempts,
        )
        return False
    await deps.connections.grant_revoked(connection_id, stripe_user_id)
    _log.info(
        "stripe_grant.revoked",
        connection_id=connection_id,
        stripe_account=stripe_user_id,
        had_grant=had_grant,
    )
    return True


def revocation_backoff(attempts: int, base: timedelta) -> timedelta:
    """How long after its ``attempts``-th failure a grant is tried again."""
    return timedelta(
        seconds=backoff_ceiling_s(attempts, base_s=base.total_seconds(), cap_s=REVOCATION_RETRY_CAP_S)
    )


async def revoke_pending_grants(deps: Dependencies) -> int:
    """Try every grant whose revocation is due; how many were revoked."""
    revoked = 0
    for connection_id, stripe_user_id in await deps.connections.grants_to_revoke(
        limit=REVOCATION_BATCH_SIZE, due_by=deps.clock()
    ):
        # A failure pushes only this grant back; the next one is tried all the same.
        if await revoke_grant(deps, connection_id, stripe_user_id):
            revoked += 1
    return revoked
