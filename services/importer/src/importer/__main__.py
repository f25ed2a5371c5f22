"""``python -m importer``: the HTTP API, the Kafka consumers and recovery in one process, on ``HTTP_PORT``."""

from contracts.runtime.process import run_service

from importer.bootstrap import build
from importer.settings import SERVICE_NAME, ImporterSettings

if __name__ == "__main__":
    run_service(SERVICE_NAME, ImporterSettings, build)
