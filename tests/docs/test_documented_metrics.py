"""Every metric the guides tell SREs to chart or alert on is one a service really exposes."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUIDES = sorted((REPO / "docs").glob("*.md"))
#: Metrics that come from elsewhere: faststream's middleware, Strimzi's Kafka Exporter, kube-state-metrics.
EXTERNAL = ("faststream_", "kafka_", "kube_")
_DEFINED = re.compile(r"\b(?:Counter|Histogram|Gauge|Summary)\(\s*\"([a-z_][a-z0-9_]*)\"")
_NAMED = re.compile(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+_(?:total|seconds|bytes))(?:\{[^`]*\})?`")


def defined_metrics() -> set[str]:
    sources = [*REPO.glob("services/*/src/**/*.py"), *REPO.glob("shared/contracts/src/**/*.py")]
    return {name for source in sources for name in _DEFINED.findall(source.read_text())}


def documented_metrics(text: str) -> set[str]:
    return {name for name in _NAMED.findall(text) if not name.startswith(EXTERNAL)}


def test_the_guides_name_only_metrics_the_services_expose() -> None:
    defined = defined_metrics()
    named = {name for guide in GUIDES for name in documented_metrics(guide.read_text())}

    assert named, "no metric found in the guides: the pattern no longer matches how they name them"
    assert named - defined == set()


def test_a_metric_no_service_exposes_is_noticed() -> None:
    text = "| import duration | `importer_import_time_seconds{processor}` | p95 |"
    assert documented_metrics(text) - defined_metrics() == {"importer_import_time_seconds"}
