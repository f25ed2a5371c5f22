"""``python -m connector``: the HTTP API and the Kafka consumers in one process, on ``HTTP_PORT``."""

from __future__ import annotations

import sys

import uvicorn
from contracts.runtime.logging import configure_logging
from pydantic import ValidationError

from connector.app import create_app
from connector.settings import ConnectorSettings

EXIT_BAD_CONFIGURATION = 2


def load_settings() -> ConnectorSettings:
    """The settings, or a clean exit naming what is wrong (never printing the values given)."""
    try:
        return ConnectorSettings()  # read from the environment
    except ValidationError as error:
        for item in error.errors():
            name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
            print(f"connector: configuration error: {name}: {item['msg']}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIGURATION) from None


def main() -> None:
    settings = load_settings()
    configure_logging("connector", level=settings.log_level, log_format=settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
