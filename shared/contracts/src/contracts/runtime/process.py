"""``python -m <service>``: settings from the environment, logs and traces configured once, then serve."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final, TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from contracts.runtime.logging import configure_logging
from contracts.runtime.settings import CommonSettings
from contracts.runtime.telemetry import configure_tracing

EXIT_BAD_CONFIGURATION: Final = 2

SettingsT = TypeVar("SettingsT", bound=CommonSettings)


def load_settings(service: str, settings_type: type[SettingsT]) -> SettingsT:
    """The settings, or a clean exit naming what is wrong (never printing the values given)."""
    try:
        return settings_type()  # read from the environment
    except ValidationError as error:
        for item in error.errors():
            name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
            print(f"{service}: configuration error: {name}: {item['msg']}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIGURATION) from None


def configure_process(service: str, settings: CommonSettings) -> None:
    """Logs and traces, once per process, before anything is built."""
    configure_logging(service, level=settings.log_level, log_format=settings.log_format)
    configure_tracing(service, settings)


def run_service(service: str, settings_type: type[SettingsT], build: Callable[[SettingsT], FastAPI]) -> None:
    settings = load_settings(service, settings_type)
    configure_process(service, settings)
    # log_config=None keeps uvicorn's loggers on the structured handler; the kit logs each request.
    # httptools (C) parses HTTP/1.1 and uvloop runs the event loop: both cut the per-request CPU that
    # uvicorn's pure-Python h11 parser and asyncio's own loop cost, the Kafka clients on the same loop.
    uvicorn.run(
        build(settings),
        host=settings.http_host,
        port=settings.http_port,
        http="httptools",
        loop="uvloop",
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )
