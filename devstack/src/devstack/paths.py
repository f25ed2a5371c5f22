"""Where the local stack keeps downloads, state and logs: all under the repository, all gitignored."""

from __future__ import annotations

import os
from pathlib import Path

#: Overrides the folder of downloads re-used between runs (the Kafka jars).
CACHE_DIR_ENV = "DEVSTACK_CACHE_DIR"
#: Overrides where process logs are written (CI points it at its artifacts).
LOG_DIR_ENV = "DEVSTACK_LOG_DIR"


def repo_root() -> Path:
    """The workspace root: the nearest folder above this package (or the cwd) holding ``uv.lock``."""
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "uv.lock").is_file() and (folder / "pyproject.toml").is_file():
                return folder
    return Path.cwd().resolve()


def cache_dir() -> Path:
    """Downloads kept between runs: ``<repo>/.cache`` unless ``DEVSTACK_CACHE_DIR`` says otherwise."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else repo_root() / ".cache"


def state_dir() -> Path:
    """Data and logs of the run command: ``<repo>/.devstack``."""
    return repo_root() / ".devstack"


def log_dir(default: Path) -> Path:
    """``DEVSTACK_LOG_DIR`` when set, else ``default``; created if missing."""
    configured = os.environ.get(LOG_DIR_ENV)
    folder = Path(configured) if configured else default
    folder.mkdir(parents=True, exist_ok=True)
    return folder
