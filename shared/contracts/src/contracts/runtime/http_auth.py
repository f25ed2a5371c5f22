"""The API's bearer tokens: HS256 with ``API_JWT_SECRET``, claims ``sub`` (the account) and ``exp``."""

from __future__ import annotations

from typing import Annotated, Final

import jwt
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from contracts.identifiers import ACCOUNT_ID_MAX_LENGTH, ACCOUNT_ID_PATTERN
from contracts.runtime.http_errors import FORBIDDEN, UNAUTHORIZED, ApiError

JWT_ALGORITHM: Final = "HS256"
JWT_LEEWAY_S: Final = 30

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AccountToken",
    description="A JWT signed with HS256 and API_JWT_SECRET; claims `sub` = the account id, and `exp`.",
)


class AccountTokens:
    """Checks the API's bearer tokens; the app holds one as ``app.state.account_tokens``."""

    def __init__(self, secret: SecretStr) -> None:
        self._secret = secret

    def account_of(self, token: str) -> str:
        try:
            claims = jwt.decode(
                token,
                self._secret.get_secret_value(),
                algorithms=[JWT_ALGORITHM],
                options={"require": ["exp", "sub"]},
                leeway=JWT_LEEWAY_S,
            )
        except jwt.PyJWTError as error:
            raise _unauthorized("The bearer token is invalid or has expired.") from error
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _unauthorized("The bearer token names no account.")
        return subject


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


AccountIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=ACCOUNT_ID_MAX_LENGTH,
        pattern=ACCOUNT_ID_PATTERN,
        description="The business's account id",
    ),
]


async def authorized_account(
    request: Request,
    account_id: AccountIdPath,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The path's account id, once the bearer token proves the caller acts for it (else 401, 403)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("This call needs an Authorization: Bearer token.")
    tokens: AccountTokens = request.app.state.account_tokens
    if tokens.account_of(credentials.credentials) != account_id:
        raise ApiError(403, FORBIDDEN, "The bearer token does not allow access to this account.")
    return account_id


AuthorizedAccount = Annotated[str, Depends(authorized_account)]
