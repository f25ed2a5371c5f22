"""``python -m importer``: configure logs and traces from the environment, then serve on HTTP_PORT."""

from __future__ import annotations

import uvicorn
from contracts.runtime.logging import configure_logging
from contracts.runtime.telemetry import configure_tracing

from importer.app import create_app
from importer.settings import SERVICE_NAME, ImporterSettings


def main() -> None:
    settings = ImporterSettings()
    configure_logging(SERVICE_NAME, level=settings.log_level, log_format=settings.log_format)
    tracer_provider = configure_tracing(SERVICE_NAME, settings)
    app = create_app(settings, tracer_provider=tracer_provider)
    # log_config=None keeps uvicorn's loggers on the structured handler configured above.
    uvicorn.run(app, host="0.0.0.0", port=settings.http_port, log_config=None, access_log=False)  # noqa: S104


if __name__ == "__main__":
    main()
