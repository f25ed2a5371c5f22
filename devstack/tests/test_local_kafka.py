"""The local broker's storage is formatted with a cluster id its command line can take."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" first in URL-safe base64: the storage tool would read "-..." as an option.
    drawn: Iterator[uuid.UUID] = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))

    assert kafka._cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_cluster_ids_are_22_url_safe_characters() -> None:
    ids = {kafka._cluster_id() for _ in range(500)}

    assert len(ids) == 500
    assert all(len(value) == 22 and not value.startswith("-") for value in ids)
