"""Read a `/metrics` scrape the way Prometheus would (prometheus_client's own parser)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float | None:
    """The sum of the samples named `name` whose labels include `labels`; None if none is."""
    found = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(key) == value for key, value in labels.items())
    ]
    return sum(found) if found else None


def required(text: str, name: str, **labels: str) -> float:
    value = sample(text, name, **labels)
    if value is None:
        raise AssertionError(f"{name}{labels or ''} is not in the scrape")
    return value
