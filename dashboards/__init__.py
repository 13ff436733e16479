"""Grafana dashboards as code (grafana-foundation-sdk).

Every module listed in :data:`MODULES` builds one dashboard from :class:`Settings` (the stack's
thresholds and targets, so panels turn red where the alerts fire). :func:`render` returns the
JSON the Grafana component deploys; the committed ``dashboards/<name>.json`` are its output for
the example stack (``make dashboards`` regenerates them, a test fails when they drift).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from components.config import StackConfig, duration_seconds
from components.render import Board

DIRECTORY = Path(__file__).resolve().parent
MODULES = ("overview", "hosts", "proxmox", "backups", "alerting", "logs")


@dataclass(frozen=True)
class Settings:
    """What dashboards take from the stack config: targets and thresholds, nothing else."""

    scrape_interval: str
    coverage_target: float
    rpo_seconds: int
    rpo_grace_seconds: int
    rto_seconds: int
    drill_every_seconds: int
    oncall_drill_every_seconds: int
    ack_timeout_seconds: int
    loki_target_lines_per_second: int
    filesystem_full_ratio: float
    memory_available_min_ratio: float
    cpu_saturation_ratio: float
    datastore_full_ratio: float


def settings(config: StackConfig) -> Settings:
    thresholds = config.alerting.thresholds
    return Settings(
        scrape_interval=config.monitoring.scrape_interval,
        coverage_target=thresholds.scrape_coverage_min,
        rpo_seconds=duration_seconds(config.backups.rpo),
        rpo_grace_seconds=duration_seconds(config.backups.rpo_grace),
        rto_seconds=duration_seconds(config.backups.rto),
        drill_every_seconds=duration_seconds(config.backups.drill.every),
        oncall_drill_every_seconds=duration_seconds(thresholds.oncall_drill_every),
        ack_timeout_seconds=duration_seconds(config.alerting.escalation.ack_timeout),
        loki_target_lines_per_second=config.loki.target_lines_per_second,
        filesystem_full_ratio=thresholds.filesystem_almost_full_ratio,
        memory_available_min_ratio=thresholds.memory_available_min_ratio,
        cpu_saturation_ratio=thresholds.cpu_saturation_ratio,
        datastore_full_ratio=thresholds.datastore_almost_full_ratio,
    )


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")


def render(config: StackConfig) -> list[Board]:
    """Every dashboard for this stack, in MODULES order."""
    from dashboards.panels import to_json

    values = settings(config)
    boards = []
    for name in MODULES:
        module = _module(name)
        boards.append(Board(name=name, folder=module.FOLDER, uid=module.UID, json=to_json(module.build(values))))
    return boards


def committed() -> dict[str, str]:
    """File name -> content of the committed dashboards/*.json."""
    return {path.name: path.read_text() for path in sorted(DIRECTORY.glob("*.json"))}


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel, as Grafana will run it."""

    dashboard: str
    panel: str
    datasource: str  # "prometheus" or "loki"
    expr: str
    instant: bool
    min_interval: str = ""  # the panel's lower limit of $__interval ("15m"), "" for none
    max_data_points: int | None = None  # the panel's "Max data points", None for its width


def panel_queries(board: Board) -> list[PanelQuery]:
    data = json.loads(board.json)
    found = []
    for panel in _panels(data):
        for target in panel.get("targets", []):
            datasource = (target.get("datasource") or panel.get("datasource") or {}).get("type", "")
            found.append(
                PanelQuery(
                    board.name,
                    panel["title"],
                    datasource,
                    target["expr"],
                    bool(target.get("instant")),
                    panel.get("interval", ""),
                    panel.get("maxDataPoints"),
                )
            )
    return found


def _panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in data.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [p for p in panels if p.get("type") != "row"]
