"""``python -m connector.apidocs``: print the connector's OpenAPI and AsyncAPI documents."""

from contracts.runtime.apidocs import print_documents

from connector.app import create_app, wire
from connector.settings import ConnectorSettings


def main() -> None:
    settings = ConnectorSettings()
    print_documents(
        create_app(settings),
        wire(settings).broker,
        title="connector",
        version="1.0.0",
        description="Validates processor credentials, runs the Stripe OAuth leg and announces connections.",
    )


if __name__ == "__main__":
    main()
