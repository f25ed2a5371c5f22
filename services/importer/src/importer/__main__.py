"""``python -m importer``: the HTTP API, the Kafka consumers and recovery in one process, on ``HTTP_PORT``."""

import gc
from typing import Final

from contracts.runtime.process import run_service
from fastapi import FastAPI

from importer.bootstrap import build
from importer.settings import SERVICE_NAME, ImporterSettings

#: The cyclic collector's thresholds. A page parses into thousands of dicts that live until the
#: page is done; at CPython's default (700 new objects) they set off a young collection every few
#: objects and full ones over the whole heap, a quarter of the importer's CPU. Nearly all of it is
#: freed by reference counting anyway: young collections every 20,000 objects find the few cycles.
GC_THRESHOLDS: Final = (20_000, 10, 10)


def build_and_freeze(settings: ImporterSettings) -> FastAPI:
    """The app; then what was built so far (modules, schemas, the app) leaves the collector's sight
    (``gc.freeze``), so that full collections walk only what pages created."""
    app = build(settings)
    gc.freeze()
    return app


if __name__ == "__main__":
    gc.set_threshold(*GC_THRESHOLDS)
    run_service(SERVICE_NAME, ImporterSettings, build_and_freeze)
