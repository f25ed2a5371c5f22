"""``python -m importer.apidocs``: print the importer's OpenAPI and AsyncAPI documents."""

from contracts.runtime.apidocs import OwnConsumer, print_documents

from importer.app import create_app
from importer.domain.page_requests import PAGE_REQUESTS_TOPIC, PageRequestMessage
from importer.settings import CONSUMER_GROUP, ImporterSettings


def main() -> None:
    app = create_app(ImporterSettings())
    print_documents(
        app,
        app.state.importer.broker,
        title="importer",
        version="1.0.0",
        description="Imports a connected processor's billing history through page requests on Kafka.",
        # Page requests are consumed by the importer's own concurrent consumer, not by its broker.
        own_consumers=[OwnConsumer(PAGE_REQUESTS_TOPIC, CONSUMER_GROUP, [PageRequestMessage])],
    )


if __name__ == "__main__":
    main()
