"""``python -m importer.apidocs``: print the importer's OpenAPI and AsyncAPI documents."""

from contracts.runtime.apidocs import print_documents

from importer.bootstrap import build
from importer.settings import ImporterSettings


def main() -> None:
    app = build(ImporterSettings())
    print_documents(
        app,
        app.state.broker,
        title="importer",
        version="1.0.0",
        description="Imports a connected processor's billing history through page requests on Kafka.",
    )


if __name__ == "__main__":
    main()
