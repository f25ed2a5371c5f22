"""The versions of the local stack's infrastructure, read from the repository's ``.env``.

That file is the one place naming them: docker compose interpolates it into docker-compose.yml,
``scripts/dev`` sources it, and devstack reads it here (the Kafka jars it fetches, the images its
containers run). Only ``NAME=value`` lines and ``${NAME}`` of an earlier line are used, the common
ground of Compose's and the shell's readings of the file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from devstack.paths import repo_root

VERSIONS_FILE_NAME: Final = ".env"
_LINE: Final = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>[^\s'\"#$]*(?:\$\{[A-Z][A-Z0-9_]*\}[^\s'\"#$]*)*)$"
)
_REFERENCE: Final = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class VersionsFileError(ValueError):
    """The versions file has a line devstack cannot read the way Compose and the shell would."""


def versions_file() -> Path:
    return repo_root() / VERSIONS_FILE_NAME


def parse_versions(text: str, *, source: str = VERSIONS_FILE_NAME) -> dict[str, str]:
    """``NAME=value`` lines (comments and blank lines skipped), ``${NAME}`` replaced by an earlier value."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise VersionsFileError(f"{source}:{number}: not a plain NAME=value line: {raw!r}")

        def expand(reference: re.Match[str], line_number: int = number) -> str:
            name = reference.group(1)
            if name not in values:
                raise VersionsFileError(f"{source}:{line_number}: ${{{name}}} is not defined above")
            return values[name]

        values[match["name"]] = _REFERENCE.sub(expand, match["value"])
    return values


@functools.cache
def stack_versions() -> Mapping[str, str]:
    path = versions_file()
    try:
        text = path.read_text()
    except OSError as error:
        raise VersionsFileError(f"the versions of the local stack are read from {path}: {error}") from error
    return parse_versions(text, source=str(path))


def version(name: str) -> str:
    """One value of the versions file (``KAFKA_VERSION``, ``KAFKA_IMAGE``, ``MONGODB_IMAGE``, ...)."""
    values = stack_versions()
    if name not in values:
        raise VersionsFileError(f"{versions_file()} names no {name}")
    return values[name]


KAFKA_VERSION: Final = version("KAFKA_VERSION")
KAFKA_IMAGE: Final = version("KAFKA_IMAGE")
MONGODB_IMAGE: Final = version("MONGODB_IMAGE")
MAILPIT_IMAGE: Final = version("MAILPIT_IMAGE")
