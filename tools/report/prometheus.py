"""A small client for Prometheus's HTTP API (query_range), with errors a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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
    """The platform's Prometheus serves TLS from the stack's internal CA and asks for basic auth:
    pass ``ca_file`` and ``auth`` (user, password) for it."""

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        auth: tuple[str, str] | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = auth
        self.session.verify = str(ca_file) if ca_file else True

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.exceptions.SSLError:
            raise PrometheusError(
                f"TLS verification of {self.url} failed: pass --ca-file with the CA that signed its certificate"
            ) from None
        except requests.RequestException as err:
            raise PrometheusError(
                f"cannot reach Prometheus at {self.url} ({type(err).__name__}): "
                "check the URL and pass it with --prometheus URL"
            ) from None
        if response.status_code in (401, 403):
            raise PrometheusError(
                f"Prometheus at {self.url} refused the credentials (HTTP {response.status_code}): "
                "pass --user NAME and the password in --password-file FILE or OBS_PROMETHEUS_PASSWORD"
            )
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
