"""Every metric the guides tell SREs to chart or alert on is one a service really exposes."""

import re

from devstack.metric_names import exposed_metrics, external
from devstack.paths import repo_root

GUIDES = sorted((repo_root() / "docs").glob("*.md"))
_NAMED = re.compile(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+_(?:total|seconds|bytes))(?:\{[^`]*\})?`")


def documented_metrics(text: str) -> set[str]:
    return {name for name in _NAMED.findall(text) if not external(name)}


def test_the_guides_name_only_metrics_the_services_expose() -> None:
    defined = exposed_metrics()
    named = {name for guide in GUIDES for name in documented_metrics(guide.read_text())}

    assert named, "no metric found in the guides: the pattern no longer matches how they name them"
    assert named - defined == set()


def test_a_metric_no_service_exposes_is_noticed() -> None:
    text = "| import duration | `importer_import_time_seconds{processor}` | p95 |"
    assert documented_metrics(text) - exposed_metrics() == {"importer_import_time_seconds"}
