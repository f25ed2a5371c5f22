"""Stripe Connect OAuth: authorization codes, token exchange, refresh and deauthorization."""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox import config as cfg
from sandbox.fake_stripe.errors import mask_key

OAUTH_CODE_TTL_S = 300


def random_token(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class AuthorizationCode:
    code: str
    account_id: str
    scope: str
    redirect_uri: str
    issued_at: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Grant:
    """What an issued access or refresh token gives access to."""

    account_id: str
    scope: str
    livemode: bool


class ConnectOAuth:
    """The platform's grants: which accounts authorized it, and the tokens it holds for them."""

    def __init__(self, platform: cfg.StripePlatform, code_ttl_s: float = OAUTH_CODE_TTL_S) -> None:
        self.platform = platform
        self.code_ttl_s = code_ttl_s
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.connected: set[str] = set()

    def redirect_allowed(self, redirect_uri: str) -> bool:
        allowed = self.platform.allowed_redirect_uris
        if allowed is not None:
            return redirect_uri in allowed
        parts = urlsplit(redirect_uri)
        return parts.scheme in ("http", "https") and bool(parts.netloc)

    def issue_code(self, account_id: str, scope: str, redirect_uri: str) -> str:
        code = "ac_" + random_token(32)
        self.codes[code] = AuthorizationCode(code, account_id, scope, redirect_uri, time.time())
        return code

    def exchange(self, form: dict[str, str], secret: str | None) -> tuple[int, dict[str, Any]]:
        """POST /oauth/token: (status, body)."""
        if secret is None:
            return 401, _oauth_error(
                "invalid_client",
                "No authentication was provided. Send your secret key as client_secret or in the "
                "Authorization header.",
            )
        if secret not in self.platform.secret_keys:
            return 401, _oauth_error("invalid_client", f"Invalid API Key provided: {mask_key(secret)}")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(form.get("code", ""), secret)
        if grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            grant = self.refresh_tokens.get(refresh)
            if grant is None:
                return 400, _oauth_error("invalid_grant", f"Refresh token does not exist: {refresh}")
            return 200, self._issue(grant, None)
        return 400, _oauth_error("unsupported_grant_type", f"Unsupported grant_type: {grant_type}")

    def _exchange_code(self, code: str, secret: str) -> tuple[int, dict[str, Any]]:
        issued = self.codes.get(code)
        if issued is None:
            return 400, _oauth_error("invalid_grant", f"Authorization code does not exist: {code}")
        if issued.used:
            for token in issued.tokens:  # like Stripe: a reused code revokes what it gave
                self.access_tokens.pop(token, None)
                self.refresh_tokens.pop(token, None)
            return 400, _oauth_error(
                "invalid_grant",
                f"This authorization code has already been used. All tokens issued with this code "
                f"have been revoked: {code}",
            )
        issued.used = True
        if time.time() - issued.issued_at > self.code_ttl_s:
            return 400, _oauth_error("invalid_grant", f"Authorization code expired: {code}")
        grant = Grant(issued.account_id, issued.scope, livemode=secret.startswith("sk_live_"))
        return 200, self._issue(grant, issued)

    def _issue(self, grant: Grant, issued: AuthorizationCode | None) -> dict[str, Any]:
        mode = "live" if grant.livemode else "test"
        access_token = f"sk_{mode}_" + random_token(48)
        refresh_token = "rt_" + random_token(48)
        self.access_tokens[access_token] = grant
        self.refresh_tokens[refresh_token] = grant
        if issued is not None:
            issued.tokens += [access_token, refresh_token]
        self.connected.add(grant.account_id)
        return {
            "access_token": access_token,
            "livemode": grant.livemode,
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "stripe_publishable_key": f"pk_{mode}_" + random_token(48),
            "stripe_user_id": grant.account_id,
            "scope": grant.scope,
        }

    def deauthorize(self, account_id: str) -> None:
        self.connected.discard(account_id)
        for store in (self.access_tokens, self.refresh_tokens):
            for token in [t for t, g in store.items() if g.account_id == account_id]:
                del store[token]


def _oauth_error(error: str, description: str) -> dict[str, Any]:
    return {"error": error, "error_description": description}
