"""Fixtures of the deployment tests: the rendered Kubernetes overlays, built once per session."""

from __future__ import annotations

import pytest

from .deploy_kit import K8S_DIR, OVERLAYS, Manifest, kustomize_build


@pytest.fixture(scope="session")
def rendered_overlays() -> dict[str, list[Manifest]]:
    """Each overlay's manifests as `kustomize build` renders them."""
    return {overlay: kustomize_build(K8S_DIR / "overlays" / overlay) for overlay in OVERLAYS}
