"""The onboarding page's signed link (minted by the gateway) and the session cookie it is exchanged for.

The link is ``{PUBLIC_BASE_URL}/onboarding?token=<JWT>``: HS256 with ``API_JWT_SECRET``, claims
``sub`` = the account id, ``exp``, ``aud`` = ``"onboarding"``, ``jti`` (the link's id: a link opens
one session, once) and optionally ``email`` (the contact address the forms suggest). The audience
keeps the two kinds of token apart: the API refuses a token that names an audience, and the page
refuses one that does not name its own.

The session is a short-lived JWT in an HttpOnly, SameSite=Lax cookie, signed with a key derived from
``API_JWT_SECRET`` (so it is no kind of API token), carrying the account and a CSRF token that every
form must send back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import jwt
from contracts.identifiers import ACCOUNT_ID_PATTERN, EMAIL_MAX_LENGTH, EMAIL_PATTERN
from contracts.runtime.http_auth import JWT_ALGORITHM, JWT_LEEWAY_S
from pydantic import SecretStr

ONBOARDING_LINK_AUDIENCE: Final = "onboarding"
ONBOARDING_PATH: Final = "/onboarding"
#: What a gateway should give a link: long enough to follow it, too short to be worth stealing.
ONBOARDING_LINK_TTL_S: Final = 15 * 60
SESSION_COOKIE: Final = "onboarding_session"
SESSION_AUDIENCE: Final = "onboarding-session"
#: How long a person can stay on the page (or come back to it) after following the link.
SESSION_TTL_S: Final = 2 * 3600
CSRF_TOKEN_BYTES: Final = 24
LINK_ID_BYTES: Final = 16
_SESSION_KEY_LABEL: Final = b"connector onboarding session v1"
_ACCOUNT_ID: Final = re.compile(ACCOUNT_ID_PATTERN)
_EMAIL: Final = re.compile(EMAIL_PATTERN)
_EMAIL_MAX_LENGTH: Final = EMAIL_MAX_LENGTH


class InvalidLink(Exception):
    """The link is not signed by us, has expired, or is not an onboarding link."""


@dataclass(frozen=True, slots=True)
class OnboardingSession:
    account_id: str
    csrf_token: str
    expires_at: int
    #: The contact address the gateway handed over, if any: a suggestion the person may change.
    contact_email: str | None = None

    def accepts(self, csrf_token: str | None) -> bool:
        """Whether a form came from a page of this session."""
        return csrf_token is not None and hmac.compare_digest(csrf_token.encode(), self.csrf_token.encode())


def mint_onboarding_link(
    secret: str,
    account_id: str,
    *,
    base_url: str,
    ttl_s: int = ONBOARDING_LINK_TTL_S,
    contact_email: str | None = None,
) -> str:
    """The link a gateway sends the person to (``base_url`` is the connector's ``PUBLIC_BASE_URL``)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": account_id,
        "aud": ONBOARDING_LINK_AUDIENCE,
        "iat": now,
        "exp": now + ttl_s,
        "jti": secrets.token_urlsafe(LINK_ID_BYTES),
    }
    if contact_email is not None:
        claims["email"] = contact_email
    token = jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)
    return f"{base_url.rstrip('/')}{ONBOARDING_PATH}?{urlencode({'token': token})}"


@dataclass(frozen=True, slots=True)
class OpenedLink:
    """A valid onboarding link: the session it opens, once its id is claimed as used."""

    session: OnboardingSession
    link_id: str
    expires_at: datetime


class OnboardingSessions:
    """Turns a signed link into a session, and the session into (and back from) its cookie value."""

    def __init__(self, api_jwt_secret: SecretStr, *, session_ttl_s: int = SESSION_TTL_S) -> None:
        self._link_secret = api_jwt_secret
        self._session_key = hmac.new(
            api_jwt_secret.get_secret_value().encode(), _SESSION_KEY_LABEL, hashlib.sha256
        ).digest()
        self.session_ttl_s = session_ttl_s

    def open(self, link_token: str) -> OpenedLink:
        """The session the link opens for the account it names; :class:`InvalidLink` otherwise."""
        try:
            claims = jwt.decode(
                link_token,
                self._link_secret.get_secret_value(),
                algorithms=[JWT_ALGORITHM],
                audience=ONBOARDING_LINK_AUDIENCE,
                options={"require": ["exp", "sub", "aud", "jti"]},
                leeway=JWT_LEEWAY_S,
            )
        except jwt.PyJWTError as error:
            raise InvalidLink(str(error)) from error
        account_id = claims.get("sub")
        if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
            raise InvalidLink("the link names no valid account")
        link_id = claims.get("jti")
        if not isinstance(link_id, str) or not 16 <= len(link_id) <= 128:
            raise InvalidLink("the link has no valid id")
        email = claims.get("email")
        suggested = email if isinstance(email, str) and valid_email(email) else None
        session = OnboardingSession(
            account_id=account_id,
            csrf_token=secrets.token_urlsafe(CSRF_TOKEN_BYTES),
            expires_at=int(time.time()) + self.session_ttl_s,
            contact_email=suggested,
        )
        expires_at = datetime.fromtimestamp(int(claims["exp"]) + JWT_LEEWAY_S, UTC)
        return OpenedLink(session=session, link_id=link_id, expires_at=expires_at)

    def cookie_value(self, session: OnboardingSession) -> str:
        claims: dict[str, Any] = {
            "sub": session.account_id,
            "aud": SESSION_AUDIENCE,
            "exp": session.expires_at,
            "csrf": session.csrf_token,
        }
        if session.contact_email is not None:
            claims["email"] = session.contact_email
        return jwt.encode(claims, self._session_key, algorithm=JWT_ALGORITHM)

    def from_cookie(self, value: str | None) -> OnboardingSession | None:
        """The session in the cookie, or ``None`` when there is none or it is forged or expired."""
        if not value:
            return None
        try:
            claims = jwt.decode(
                value,
                self._session_key,
                algorithms=[JWT_ALGORITHM],
                audience=SESSION_AUDIENCE,
                options={"require": ["exp", "sub", "aud", "csrf"]},
            )
        except jwt.PyJWTError:
            return None
        account_id, csrf, email = claims.get("sub"), claims.get("csrf"), claims.get("email")
        if not isinstance(account_id, str) or not isinstance(csrf, str):
            return None
        return OnboardingSession(
            account_id=account_id,
            csrf_token=csrf,
            expires_at=int(claims["exp"]),
            contact_email=email if isinstance(email, str) else None,
        )


def valid_email(value: str) -> bool:
    """Whether ``value`` is an address the connector accepts as a contact email (as the API does)."""
    return len(value) <= _EMAIL_MAX_LENGTH and _EMAIL.fullmatch(value) is not None
