"""Writes (or checks) the services' API documents under ``docs/api/``: ``python -m devstack.apidocs``.

Each service prints its own documents (``python -m <service>.apidocs``) in a process of its own, with
placeholder secrets that only let its settings load: the documents do not depend on them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from devstack.paths import repo_root

SERVICES: Final = ("connector", "importer", "notifier")
DOCS_DIR: Final = repo_root() / "docs" / "api"
#: Placeholders, not secrets: documentation needs settings that load, nothing more.
PLACEHOLDER_ENV: Final = {
    "API_JWT_SECRET": "documentation-placeholder-not-a-secret-000000",
    "CREDENTIALS_KEYS": base64.urlsafe_b64encode(bytes(32)).decode(),
    "CONNECTOR_PRIVATE_KEY": base64.b64encode(bytes(range(1, 33))).decode(),
}


def documents(service: str) -> dict[str, str]:
    """``{file name: text}`` of one service's OpenAPI and AsyncAPI documents."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), **PLACEHOLDER_ENV}
    output = subprocess.run(
        [sys.executable, "-m", f"{service}.apidocs"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=repo_root(),
    ).stdout
    parsed = json.loads(output)
    return {
        f"{service}.{kind}.json": json.dumps(parsed[kind], indent=2, sort_keys=True) + "\n"
        for kind in ("openapi", "asyncapi")
    }


def stale_documents(directory: Path = DOCS_DIR) -> list[str]:
    """The documents whose committed copy differs from what the code generates now."""
    return [
        name
        for service in SERVICES
        for name, text in documents(service).items()
        if not (directory / name).exists() or (directory / name).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when a committed document is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_documents()
        for name in stale:
            print(f"stale: docs/api/{name} (run scripts/api-docs)")
        return 1 if stale else 0
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        for name, text in documents(service).items():
            (DOCS_DIR / name).write_text(text)
            print(f"wrote docs/api/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
