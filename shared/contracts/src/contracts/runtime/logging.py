"""Structured logs: JSON lines with the unit of work's context, and never a secret.

Context (account_id, import_id, topic, partition, offset, trace_id) is bound through ``contextvars``
so that one line per unit of work carries all of it. Every event passes through :func:`redact`,
which removes values of secret-looking fields and anything shaped like a processor key, whatever
field it hides in.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

import structlog
from opentelemetry import trace

#: Field names whose values are never written, at any depth.
SECRET_FIELD_NAMES: Final = frozenset(
    {
        "api_key",
        "api_key_sealed",
        "authorization",
        "password",
        "secret",
        "client_secret",
        "access_token",
        "refresh_token",
        "token",
        "credentials",
        "smtp_password",
        "private_key",
    }
)

#: Stripe keys (secret, restricted, publishable, OAuth tokens), Stripe webhook signing secrets,
#: Chargebee API keys (``live_``/``test_`` and at least 20 letters or digits: a Python name such as
#: ``test_connect_site`` has underscores and stays readable) and bearer/basic credentials.
_SECRET_PATTERN: Final = re.compile(
    r"(?:sk|rk|pk|rt)_(?:live|test)_[A-Za-z0-9]{4,}"
    r"|whsec_[A-Za-z0-9+/=]{8,}"
    r"|(?<![A-Za-z0-9_])(?:live|test)_[A-Za-z0-9]{20,}"
    r"|(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"
)
REDACTED: Final = "[redacted]"


def redact_text(text: str) -> str:
    return _SECRET_PATTERN.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret fields and secret-shaped strings replaced."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if str(key).lower() in SECRET_FIELD_NAMES else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    redacted: dict[str, Any] = redact(dict(event_dict))
    return redacted


def _trace_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def configure_logging(service: str, *, level: str = "INFO", log_format: str = "json") -> None:
    """Route structlog and the standard library's logging through one redacting JSON renderer."""
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _trace_processor,
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    structlog.configure(
        # A call below the logger's level is dropped before the chain runs (stamps, context,
        # redaction): a hot path's INFO line costs a level check at LOG_LEVEL=WARNING.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
