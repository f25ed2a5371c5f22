"""``python -m notifier.apidocs``: print the notifier's OpenAPI and AsyncAPI documents."""

from contracts.runtime.apidocs import print_documents

from notifier.bootstrap import build
from notifier.settings import NotifierSettings


def main() -> None:
    app = build(NotifierSettings())
    print_documents(
        app,
        app.state.broker,
        title="notifier",
        version="1.0.0",
        description="Emails the account's contact once when an import completes or fails.",
    )


if __name__ == "__main__":
    main()
