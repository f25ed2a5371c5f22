"""``python -m notifier``: the Kafka consumer and the receipt relay in one process, serving ``HTTP_PORT``."""

from contracts.runtime.process import run_service

from notifier.bootstrap import SERVICE, build
from notifier.settings import NotifierSettings

if __name__ == "__main__":
    run_service(SERVICE, NotifierSettings, build)
