"""Bearer tokens of the API: HS256 with ``API_JWT_SECRET``, ``sub`` the account, ``exp`` required."""

from __future__ import annotations

from typing import Annotated

import jwt
from contracts.identifiers import ACCOUNT_ID_MAX_LENGTH, ACCOUNT_ID_PATTERN
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from importer.entrypoints.errors import ApiError

_bearer = HTTPBearer(auto_error=False)


class TokenVerifier:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def account_of(self, token: str) -> str:
        """The account a valid token speaks for; raises a 401 ``ApiError`` otherwise."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
            )
        except jwt.ExpiredSignatureError as error:
            raise ApiError(401, "token_expired", "the bearer token has expired") from error
        except jwt.PyJWTError as error:
            raise ApiError(401, "invalid_token", "the bearer token is not valid") from error
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ApiError(401, "invalid_token", "the bearer token names no account")
        return subject


async def authorized_account(
    request: Request,
    account_id: Annotated[
        str, Path(min_length=1, max_length=ACCOUNT_ID_MAX_LENGTH, pattern=ACCOUNT_ID_PATTERN)
    ],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The path's account, once the bearer token proves the caller speaks for it (401, 403)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(401, "unauthorized", "a bearer token is required")
    verifier: TokenVerifier = request.app.state.token_verifier
    if verifier.account_of(credentials.credentials) != account_id:
        raise ApiError(403, "forbidden", "the token does not grant access to this account")
    return account_id
