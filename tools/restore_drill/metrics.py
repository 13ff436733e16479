"""Drill outcome metrics, per target: a node_exporter textfile or a Pushgateway group.

``last_run`` and ``last_status`` describe the latest attempt; ``last_success``, ``rto`` and
``rpo`` describe the latest *verified* drill and are carried over from the state file when an
attempt fails, so one bad night does not erase what was proven before.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from tools.restore_drill.drill import Result

JOB = "obs_restore_drill"
STATE_FILE = "state.json"

HELP = {
    "obs_restore_drill_last_run_timestamp_seconds": "Unix time the latest drill of the target finished.",
    "obs_restore_drill_last_success_timestamp_seconds": "Unix time of the latest verified drill (0: never).",
    "obs_restore_drill_last_status": "1 if the latest drill verified the canary checksums, 0 if it failed.",
    "obs_restore_drill_rto_seconds": "Restore start to checksums verified, in the latest verified drill.",
    "obs_restore_drill_rpo_seconds": "Drill start minus the restored canary's timestamp, latest verified drill.",
    "obs_restore_drill_scratch_leftover": "1 if the latest drill could not destroy its scratch VM.",
    "obs_restore_drill_rto_budget_seconds": "The target's RTO budget (inventory drill.rto).",
    "obs_restore_drill_rpo_budget_seconds": "The target's RPO budget (inventory drill.rpo).",
}
# Per application check of the latest attempt that reached the checks (label `check`).
CHECK_HELP = {
    "obs_restore_drill_check_status": "1 if the application check passed in the restored guest, 0 if it failed.",
    "obs_restore_drill_check_duration_seconds": "Time the application check took until it passed or gave up.",
}


def load_state(directory: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((directory / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(directory: Path, state: dict[str, dict[str, Any]]) -> None:
    _atomic_write(directory / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def record(state: dict[str, dict[str, Any]], result: Result) -> None:
    """Update a target's state with one attempt (RTO and RPO only count when verified)."""
    entry = state.setdefault(result.target, {"lastSuccess": 0})
    entry.update(
        lastRun=result.finished_at,
        lastStatus=int(result.verified),
        scratchLeftover=int(result.scratch_destroyed is False),
        rtoBudgetSeconds=result.rto_budget_seconds,
        rpoBudgetSeconds=result.rpo_budget_seconds,
    )
    if result.verified:
        entry.update(lastSuccess=result.finished_at, rtoSeconds=result.rto_seconds, rpoSeconds=result.rpo_seconds)
    if result.checks:
        entry["checks"] = {c.name: {"status": int(c.passed), "seconds": c.seconds} for c in result.checks}


def registry(target: str, entry: dict[str, Any]) -> CollectorRegistry:
    reg = CollectorRegistry()
    values = {
        "obs_restore_drill_last_run_timestamp_seconds": entry.get("lastRun"),
        "obs_restore_drill_last_success_timestamp_seconds": entry.get("lastSuccess", 0),
        "obs_restore_drill_last_status": entry.get("lastStatus"),
        "obs_restore_drill_rto_seconds": entry.get("rtoSeconds"),
        "obs_restore_drill_rpo_seconds": entry.get("rpoSeconds"),
        "obs_restore_drill_scratch_leftover": entry.get("scratchLeftover", 0),
        "obs_restore_drill_rto_budget_seconds": entry.get("rtoBudgetSeconds"),
        "obs_restore_drill_rpo_budget_seconds": entry.get("rpoBudgetSeconds"),
    }
    for name, value in values.items():
        if value is not None:
            Gauge(name, HELP[name], ["target"], registry=reg).labels(target=target).set(float(value))
    checks = entry.get("checks") or {}
    if checks:
        status, duration = (Gauge(name, CHECK_HELP[name], ["target", "check"], registry=reg) for name in CHECK_HELP)
        for check, outcome in sorted(checks.items()):
            status.labels(target=target, check=check).set(float(outcome["status"]))
            duration.labels(target=target, check=check).set(float(outcome["seconds"]))
    return reg


def write_textfile(directory: Path, target: str, entry: dict[str, Any]) -> Path:
    """One file per target, replaced atomically (prometheus_client writes temp + rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"obs_restore_drill_{target.replace('-', '_')}.prom"
    write_to_textfile(str(path), registry(target, entry))
    return path


@dataclass(frozen=True)
class PushAuth:
    """The drill's Pushgateway writer: basic auth (password read from a file), TLS with a CA file."""

    user: str
    password_file: str
    ca_file: str | None = None


def _handler(auth: PushAuth) -> Callable[..., Callable[[], None]]:
    """A push_to_gateway handler: requests with the writer's basic auth and the stack's CA."""

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        def send() -> None:
            password = Path(auth.password_file).read_text().strip()
            response = requests.request(
                method, url, data=data, headers=dict(headers), timeout=timeout,
                auth=(auth.user, password), verify=auth.ca_file or True,
            )  # fmt: skip
            if response.status_code >= 400:
                raise OSError(f"Pushgateway answered {response.status_code}: {response.text.strip()[:200]}")

        return send

    return handler


def push(url: str, target: str, entry: dict[str, Any], timeout: float = 15, auth: PushAuth | None = None) -> None:
    """PUT the target's group (job=obs_restore_drill, target=<name>) on the Pushgateway."""
    extra: dict[str, Any] = {"handler": _handler(auth)} if auth is not None else {}
    push_to_gateway(
        url, job=JOB, grouping_key={"target": target}, registry=registry(target, entry), timeout=timeout, **extra
    )


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
