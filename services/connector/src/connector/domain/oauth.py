"""The Stripe OAuth leg: single-use states bound to one pending connection, and the authorize URL."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

STATE_BYTES: Final = 32
OAUTH_SCOPE: Final = "read_write"


@dataclass(frozen=True, slots=True)
class OAuthGrant:
    """What a state stands for: the pending connection of one account, until it expires."""

    state_digest: str
    connection_id: str
    account_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedState:
    #: Sent to the browser once, never stored: only its digest is.
    state: str
    grant: OAuthGrant


def state_digest(state: str) -> str:
    """States are stored hashed so that reading the store does not let anyone complete a flow."""
    return hashlib.sha256(state.encode()).hexdigest()


def issue_state(connection_id: str, account_id: str, now: datetime, ttl: timedelta) -> IssuedState:
    state = secrets.token_urlsafe(STATE_BYTES)
    return IssuedState(state, OAuthGrant(state_digest(state), connection_id, account_id, now + ttl))


@dataclass(frozen=True, slots=True)
class StripeConnectPlatform:
    """Our Connect platform's public settings."""

    client_id: str | None
    connect_base: str
    redirect_uri: str
    state_ttl: timedelta

    def authorize_url(self, state: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id or "",
                "scope": OAUTH_SCOPE,
                "state": state,
                "redirect_uri": self.redirect_uri,
            }
        )
        return f"{self.connect_base}/oauth/authorize?{query}"


@dataclass(frozen=True, slots=True)
class StripeAuthorization:
    """What Stripe returns for an authorization code: the account that granted it and its tokens."""

    stripe_user_id: str
    access_token: str | None
    refresh_token: str | None
    #: What the grant allows: ``read_write`` lets the connector apply offers.
    scope: str | None = None

    def __repr__(self) -> str:
        return f"StripeAuthorization(stripe_user_id={self.stripe_user_id!r})"


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query (replacing same-named ones), fragment kept."""
    parts = urlsplit(url)
    query = [
        (key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key not in params
    ]
    query.extend(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class GrantRevocationDeferred(Exception):
    """Stripe could not be asked to revoke a grant now (unreachable, throttled, our platform key
    refused); the revocation stays recorded and is tried again later."""
