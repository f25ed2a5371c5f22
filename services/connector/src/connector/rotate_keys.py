"""``connector-rotate-credentials``: re-encrypt every stored credential under the newest key.

Run it after putting a new key first in ``CREDENTIALS_KEYS`` (on the connector and the importer);
once it reports nothing unreadable, the older keys can be removed. It reads the same environment as
the service (``MONGODB_URL``, ``MONGODB_DATABASE``, ``CREDENTIALS_KEYS``) and prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Final

from contracts.connections import CredentialCipher
from contracts.runtime.logging import configure_logging, get_logger
from contracts.runtime.mongo import mongo_client
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.adapters.mongo_connections import MongoConnectionStore
from connector.service.rotate_credentials import RotationReport, rotate_credentials

EXIT_INCOMPLETE: Final = 1
EXIT_BAD_CONFIGURATION: Final = 2

_log = get_logger("connector.rotate_credentials")


class RotationSettings(BaseSettings):
    """Only what rotating needs: the command must not require the API's JWT secret."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    mongodb_url: str = "mongodb://localhost:27017"
    mongodb_database: str = "billing_import"
    credentials_keys: SecretStr = Field(min_length=1)


async def rotate(settings: RotationSettings) -> RotationReport:
    keys = [key for key in settings.credentials_keys.get_secret_value().split(",") if key.strip()]
    cipher, newest = CredentialCipher(keys), CredentialCipher(keys[:1])
    client = mongo_client(settings.mongodb_url, service="connector")
    try:
        store = MongoConnectionStore(client[settings.mongodb_database])
        return await rotate_credentials(store, cipher, newest)
    finally:
        await client.close()


def main() -> None:
    configure_logging("connector", log_format="json")
    try:
        settings = RotationSettings()  # read from the environment
    except ValidationError as error:
        names = ", ".join(".".join(map(str, item["loc"])).upper() for item in error.errors())
        print(f"connector-rotate-credentials: configuration error: {names}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIGURATION) from None
    try:
        report = asyncio.run(rotate(settings))
    except ValueError:
        print("connector-rotate-credentials: configuration error: CREDENTIALS_KEYS", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIGURATION) from None
    summary = {
        "rotated": report.rotated,
        "already_current": report.already_current,
        "changed_meanwhile": report.changed_meanwhile,
        "unreadable": report.unreadable,
    }
    _log.info("credentials.rotated", **summary)
    print(json.dumps(summary))
    if not report.complete:
        raise SystemExit(EXIT_INCOMPLETE)


if __name__ == "__main__":
    main()
