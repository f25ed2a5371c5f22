"""Reading the versions file (.env) the way docker compose and the shell both read it."""

from __future__ import annotations

import pytest
from devstack.versions import VersionsFileError, parse_versions


def test_plain_lines_and_earlier_names_are_read() -> None:
    text = (
        "# Kafka\n\nKAFKA_VERSION=4.1.0\nKAFKA_IMAGE=apache/kafka:${KAFKA_VERSION}\nMONGODB_IMAGE=mongo:7.0\n"
    )

    assert parse_versions(text) == {
        "KAFKA_VERSION": "4.1.0",
        "KAFKA_IMAGE": "apache/kafka:4.1.0",
        "MONGODB_IMAGE": "mongo:7.0",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "KAFKA_IMAGE=apache/kafka:${KAFKA_VERSION}\nKAFKA_VERSION=4.1.0\n",
            "KAFKA_VERSION} is not defined above",
        ),
        ('MONGODB_IMAGE="mongo:7.0"\n', "not a plain NAME=value line"),
        ("export MONGODB_IMAGE=mongo:7.0\n", "not a plain NAME=value line"),
        ("MONGODB_IMAGE=mongo:7.0 # pinned\n", "not a plain NAME=value line"),
        ("MONGODB_IMAGE=$TAG\n", "not a plain NAME=value line"),
    ],
)
def test_a_line_read_differently_elsewhere_is_refused(text: str, expected: str) -> None:
    with pytest.raises(VersionsFileError, match=expected):
        parse_versions(text, source=".env")
