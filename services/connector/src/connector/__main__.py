"""``python -m connector``: the HTTP API and the Kafka consumers in one process, on ``HTTP_PORT``."""

from contracts.runtime.process import run_service

from connector.bootstrap import SERVICE, build
from connector.settings import ConnectorSettings

if __name__ == "__main__":
    run_service(SERVICE, ConnectorSettings, build)
