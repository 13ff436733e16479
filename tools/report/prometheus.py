"""A small client for Prometheus's HTTP API (query_range), with errors a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000


class PrometheusError(Exception):
    """Prometheus could not be reached or refused a query; the message says what to do."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]

    def label(self, name: str, default: str = "") -> str:
        return self.labels.get(name, default)


class Prometheus:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.RequestException as err:
            raise PrometheusError(
                f"cannot reach Prometheus at {self.url} ({type(err).__name__}): "
                "check the URL and pass it with --prometheus URL"
            ) from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"{self.url}{path} answered HTTP {response.status_code} without JSON: is this Prometheus?"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused `{params.get('query')}`: {body.get('error', body)}")
        return body["data"]

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """Every series of a range query, points as (unix seconds, value)."""
        if (end - start) / step > MAX_POINTS:
            coarsest = (end - start) / MAX_POINTS
            raise PrometheusError(f"step {step:.0f}s is too fine for this window: use --step {coarsest:.0f} or more")
        data = self._get("/api/v1/query_range", {"query": query, "start": start, "end": end, "step": step})
        return [
            Series(
                labels=dict(item["metric"]),
                points=[(float(t), float(v)) for t, v in item["values"]],
            )
            for item in data["result"]
        ]

    def ready(self) -> bool:
        try:
            return self.session.get(f"{self.url}/-/ready", timeout=self.timeout).status_code == 200
        except requests.RequestException:
            return False
