"""Every service's registry carries the process, garbage-collector and interpreter metrics."""

from contracts.runtime.metrics import REGISTRY
from prometheus_client import generate_latest


def test_the_registry_exposes_process_and_gc_metrics() -> None:
    exposition = generate_latest(REGISTRY).decode()
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "python_gc_collections_total",
        "python_info",
    ):
        assert f"\n{name}" in f"\n{exposition}", name
