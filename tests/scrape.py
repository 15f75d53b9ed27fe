"""Reading a server's `/metrics`, as Prometheus would."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FRESH = {"Connection": "close"}  # a new connection per request: the kernel picks the worker


def scrape(url: str) -> Samples:
    return parse(httpx.get(url + "/metrics", headers=FRESH).text)


def parse(text: str) -> Samples:
    """Every sample of one /metrics answer, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def info_count(samples: Samples) -> float:
    key = ("http_requests_total", (("method", "GET"), ("route", "/info"), ("status", "200")))
    return samples.get(key, 0.0)
