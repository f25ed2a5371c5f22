"""The stored connection: written by the connector, read by the importer.

The ``connections`` collection is the one piece of storage two services share, so its shape is part
of the contract. Processor secrets in it are only ever stored encrypted with ``CREDENTIALS_KEYS``
(Fernet; newest key first, older keys still decrypt, :meth:`CredentialCipher.rotate` re-encrypts
under the newest). Destroying a connection's credentials removes the ciphertext itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Final, Literal

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from contracts.events import Mode, Processor

CONNECTIONS_COLLECTION: Final = "connections"
#: The field of a connection document where the connector keeps the last import it asked for.
LATEST_IMPORT_FIELD: Final = "latest_import"


class ConnectionStatus(StrEnum):
    AWAITING_AUTHORIZATION = "awaiting_authorization"
    CONNECTED = "connected"
    SKIPPED = "skipped"
    #: The processor refused the stored credentials (deauthorized, or a 401): history stays readable,
    #: sync and the offers stop until the account reconnects the same processor account.
    NEEDS_RECONNECT = "needs_reconnect"
    DISCONNECTED = "disconnected"


class ProcessorCredentials(BaseModel):
    """What the importer needs to read the processor. Only ever at rest as ciphertext."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr
    #: Stripe Connect: the OAuth access token and refresh token of the connected account.
    oauth_access_token: SecretStr | None = None
    oauth_refresh_token: SecretStr | None = None


class StoredConnection(BaseModel):
    """A document of the ``connections`` collection (``_id`` is the connection id)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    connection_id: Annotated[str, Field(alias="_id")]
    account_id: str
    processor: Processor | None = None
    status: ConnectionStatus
    mode: Mode | None = None
    processor_account_id: str | None = None
    #: Chargebee only: the validated site name, and the product catalog version (``"1.0"``/``"2.0"``).
    site: str | None = None
    product_catalog: Literal["1.0", "2.0"] | None = None
    contact_email: str | None = None
    #: Fernet token of :class:`ProcessorCredentials` as JSON; ``None`` once destroyed.
    credentials_ciphertext: str | None = None
    #: Whether writing at the processor (offers) was verified at connect without changing anything
    #: there, and if not, why (``read_only_key``, ``read_only_grant``, ``not_verified``).
    write_access: bool = False
    write_access_reason: str | None = None
    created_at: AwareDatetime
    connected_at: AwareDatetime | None = None
    #: When the connection last came back from ``needs_reconnect`` (``connected_at`` stays the first):
    #: what the processor said about access before it (a deauthorization) is about the lost credentials.
    reconnected_at: AwareDatetime | None = None
    #: Which credentials are stored: 0 for those of the connect, one more for each reconnect. A
    #: report that the processor refused credentials names the version it used, so a refusal of
    #: credentials a reconnect already replaced (a reader still holding them) is told apart without
    #: comparing the clocks of two services. Re-encrypting the same credentials keeps the version.
    credentials_version: int = 0
    disconnected_at: AwareDatetime | None = None


class AnnouncedImport(BaseModel):
    """The import the connector asked for last on a connection (``latest_import`` of its document),
    written in the same change that queues its event. Until the importer has consumed that event it
    has no document of its own for it, and answers ``queued`` for it from this one."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    import_id: str
    requested_at: AwareDatetime


class CredentialsUnavailable(Exception):
    """No configured key opens these credentials (wrong keys, or a key retired too early)."""


class CredentialCipher:
    """Encrypts processor credentials under the newest of ``CREDENTIALS_KEYS``."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("CREDENTIALS_KEYS needs at least one key")
        self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])

    @classmethod
    def from_setting(cls, value: str) -> CredentialCipher:
        """From the comma-separated ``CREDENTIALS_KEYS`` value, newest first."""
        return cls([key for key in value.split(",") if key.strip()])

    def encrypt(self, credentials: ProcessorCredentials) -> str:
        plain = {
            "api_key": credentials.api_key.get_secret_value(),
            "oauth_access_token": _reveal(credentials.oauth_access_token),
            "oauth_refresh_token": _reveal(credentials.oauth_refresh_token),
        }
        return self._fernet.encrypt(json.dumps(plain).encode()).decode()

    def decrypt(self, ciphertext: str) -> ProcessorCredentials:
        try:
            plain = self._fernet.decrypt(ciphertext.encode())
        except InvalidToken as error:
            raise CredentialsUnavailable("no configured credentials key opens these credentials") from error
        return ProcessorCredentials.model_validate_json(plain)

    def rotate(self, ciphertext: str) -> str:
        """The same credentials encrypted under the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as error:
            raise CredentialsUnavailable("no configured credentials key opens these credentials") from error


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
