"""A small client for Alertmanager's API v2 (only what the silence and drill tools need)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from tools.silences.policy import BadInputError, Matcher


class AlertmanagerError(RuntimeError):
    """Alertmanager could not be reached, refused a request or answered something unusable."""


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Alertmanager:
    """API v2 client; the monitoring hosts serve it over TLS with basic auth (password from a file)."""

    def __init__(
        self,
        url: str,
        timeout: float = 10,
        ca_file: str | None = None,
        user: str | None = None,
        password_file: str | None = None,
    ) -> None:
        self.base = url.rstrip("/") + "/api/v2"
        self.timeout = timeout
        if ca_file and not Path(ca_file).is_file():
            raise BadInputError(f"--ca-file {ca_file}: no such file (the CA that signed Alertmanager's certificate)")
        self.verify: str | bool = ca_file or True
        self.auth: tuple[str, str] | None = None
        if user:
            if not password_file:
                raise BadInputError("--user needs --password-file (the password is never an argument)")
            try:
                self.auth = (user, Path(password_file).read_text().strip())
            except OSError as err:
                raise BadInputError(f"cannot read the password file {password_file}: {err.strerror}") from None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = requests.request(
                method, self.base + path, timeout=self.timeout, verify=self.verify, auth=self.auth, **kwargs
            )
        except requests.RequestException as err:
            raise AlertmanagerError(f"cannot reach Alertmanager at {self.base}: {err}") from None
        if response.status_code >= 400:
            raise AlertmanagerError(
                f"Alertmanager refused {method} {path}: {response.status_code} {response.text.strip()[:500]}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerError(
                f"{self.base}{path} answered {response.status_code} without JSON: is --alertmanager "
                "the Alertmanager's base URL (e.g. https://10.0.20.10:9093)?"
            ) from None

    def _objects(self, path: str, required: tuple[str, ...], **kwargs: Any) -> list[dict[str, Any]]:
        """A list of objects with these keys (API v2 shapes), or an error saying the answer is not one."""
        data = self._call("GET", path, **kwargs)
        ok = isinstance(data, list) and all(
            isinstance(item, dict) and all(k in item for k in required) and isinstance(item.get("status"), dict)
            for item in data
        )
        if not ok:
            raise AlertmanagerError(
                f"{self.base}{path} did not answer a list of API v2 objects ({', '.join(required)})"
            )
        return list(data)

    def alerts(self, active_only: bool = True) -> list[dict[str, Any]]:
        params = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
        alerts = self._objects("/alerts", ("labels", "status", "startsAt", "fingerprint"), params=params)
        return [a for a in alerts if not active_only or a["status"].get("state") != "unprocessed"]

    def silences(self) -> list[dict[str, Any]]:
        return self._objects("/silences", ("id", "matchers", "status", "startsAt", "endsAt"))

    def create_silence(self, matchers: list[Matcher], duration: timedelta, author: str, comment: str) -> str:
        now = datetime.now(UTC)
        body = {
            "matchers": [m.api() for m in matchers],
            "startsAt": iso(now),
            "endsAt": iso(now + duration),
            "createdBy": author,
            "comment": comment,
        }
        answer = self._call("POST", "/silences", json=body)
        if not isinstance(answer, dict) or "silenceID" not in answer:
            raise AlertmanagerError(f"{self.base}/silences answered no silenceID: {str(answer)[:200]}")
        return str(answer["silenceID"])

    def expire_silence(self, silence_id: str) -> None:
        self._call("DELETE", f"/silence/{silence_id}")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self._call("POST", "/alerts", json=alerts)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--alertmanager", default=env("OBS_ALERTMANAGER_URL", "http://127.0.0.1:9093"), help="base URL")
    parser.add_argument("--ca-file", default=env("OBS_ALERTMANAGER_CA_FILE"), help="CA of Alertmanager's TLS cert")
    parser.add_argument("--user", default=env("OBS_ALERTMANAGER_USER"), help="basic-auth user")
    parser.add_argument("--password-file", default=env("OBS_ALERTMANAGER_PASSWORD_FILE"), help="basic-auth password")


def from_arguments(args: argparse.Namespace) -> Alertmanager:
    return Alertmanager(args.alertmanager, ca_file=args.ca_file, user=args.user, password_file=args.password_file)
