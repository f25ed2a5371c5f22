"""A log call below the configured level costs a level check, not the processor chain."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from contracts.runtime.logging import configure_logging, get_logger


class Watched(dict[str, Any]):
    """A logged value that records whether the chain (its redaction walks every mapping) read it."""

    def __init__(self) -> None:
        super().__init__(card="4242")
        self.read = False

    def items(self) -> Any:  # dict_items, as dict's
        self.read = True
        return super().items()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_a_line_below_the_level_never_reaches_the_chain(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("probe", level="WARNING")
    below, at_level = Watched(), Watched()

    get_logger("probe").info("page.handled", detail=below)
    get_logger("probe").warning("page.slow", detail=at_level)

    assert not below.read
    assert at_level.read
    printed = capsys.readouterr().out
    assert "page.slow" in printed
    assert "page.handled" not in printed
