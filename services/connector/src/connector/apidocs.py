"""``python -m connector.apidocs``: print the connector's OpenAPI and AsyncAPI documents."""

from contracts.runtime.apidocs import print_documents

from connector.bootstrap import build
from connector.settings import ConnectorSettings


def main() -> None:
    app = build(ConnectorSettings())
    print_documents(
        app,
        app.state.broker,
        title="connector",
        version="1.0.0",
        description="Validates processor credentials, runs the Stripe OAuth leg and announces connections.",
    )


if __name__ == "__main__":
    main()
