"""The locked environment takes no pre-release by accident, and no package caps Python without a reason."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGES: Final = (
    "shared/contracts",
    "services/connector",
    "services/importer",
    "services/notifier",
    "sandbox",
    "devstack",
)
# Pre-releases the workspace takes on purpose: the test store is only published as betas, and
# opentelemetry's instrumentation packages are only ever released with a `b` suffix.
WANTED_PRE_RELEASES: Final = re.compile(r"secantusdb|opentelemetry-.*")
PRE_RELEASE: Final = re.compile(r"\d(a|b|rc|\.dev)\d+")


def locked_pre_releases(lock: dict[str, Any]) -> dict[str, str]:
    """Each locked package whose version is an alpha, beta, release candidate or dev release."""
    return {
        package["name"]: package["version"]
        for package in lock["package"]
        if "version" in package and PRE_RELEASE.search(package["version"])
    }


def test_the_lock_holds_no_release_candidate_nor_an_unwanted_pre_release() -> None:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    unwanted = {
        name: version
        for name, version in locked_pre_releases(lock).items()
        if not WANTED_PRE_RELEASES.fullmatch(name) or "rc" in version
    }
    assert unwanted == {}


def test_the_check_sees_a_release_candidate() -> None:
    lock = {
        "package": [{"name": "protobuf", "version": "7.37.0rc1"}, {"name": "pymongo", "version": "4.10.1"}]
    }
    assert locked_pre_releases(lock) == {"protobuf": "7.37.0rc1"}


def test_no_global_pre_release_mode() -> None:
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "prerelease" not in root["tool"]["uv"]


def test_no_package_caps_the_python_version() -> None:
    capped = {
        package: requires
        for package in PACKAGES
        if "<"
        in (
            requires := tomllib.loads((REPO_ROOT / package / "pyproject.toml").read_text())["project"][
                "requires-python"
            ]
        )
    }
    assert capped == {}
