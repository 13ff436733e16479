"""Pictures of the dashboards: each panel drawn with matplotlib at its grid position, from what
its queries return on the bench's Prometheus (LogQL panels are drawn as placeholders: no Loki here).

Not Grafana's renderer, but the same layout, titles, units, thresholds and real query results,
which is what a reader of docs/dashboards.md needs to picture the dashboard.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

# (expr, instant) -> Prometheus API "result" list
Fetch = Callable[[str, bool], list[dict[str, Any]]]

ROW_UNITS = 30  # pixels per grid row in Grafana
COLOURS = {"green": "#56a64b", "orange": "#ff9830", "red": "#e02f44", "blue": "#3274d9"}
BACKGROUND, PANEL, TEXT, MUTED = "#111217", "#181b1f", "#ccccdc", "#8e8e9e"


def _legend(template: str, labels: dict[str, str]) -> str:
    if template in ("__auto", ""):
        return ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _colour(value: float, steps: list[dict[str, Any]]) -> str:
    colour = steps[0]["color"] if steps else "green"
    for step in steps[1:]:
        if value >= step["value"]:
            colour = step["color"]
    return COLOURS.get(colour, colour)


def _fmt(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value:.1%}"
    if unit == "s":
        for size, suffix in ((86400.0, "d"), (3600.0, "h"), (60.0, "min")):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.2f} s"
    if unit in ("bytes", "Bps"):
        for size, suffix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}{'/s' if unit == 'Bps' else ''}"
    return f"{value:.3g}"


def _mapped(value: float, mappings: list[dict[str, Any]]) -> tuple[str, str] | None:
    for mapping in mappings:
        hit = mapping.get("options", {}).get(str(int(value)) if value == int(value) else str(value))
        if hit:
            return hit["text"], COLOURS.get(hit.get("color", ""), TEXT)
    return None


def _timeseries(ax: Axes, panel: dict[str, Any], fetch: Fetch) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    drawn = 0
    for target in panel["targets"]:
        if target["datasource"]["type"] != "prometheus":
            continue
        for series in fetch(target["expr"], False)[:12]:
            times = [mdates.date2num(datetime.fromtimestamp(float(t), tz=UTC)) for t, _ in series["values"]]
            values = [float(v) for _, v in series["values"]]
            ax.plot(times, values, linewidth=0.8, label=_legend(target.get("legendFormat", ""), series["metric"]))
            drawn += 1
    if not drawn:
        ax.text(
            0.5,
            0.5,
            "LogQL (Loki): not in the bench" if _is_loki(panel) else "no data",
            ha="center",
            va="center",
            color=MUTED,
            transform=ax.transAxes,
            fontsize=8,
        )
        return
    for step in defaults.get("thresholds", {}).get("steps", [])[1:]:
        ax.axhline(step["value"], color=COLOURS.get(step["color"], step["color"]), linewidth=0.8, linestyle="--")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.yaxis.set_major_formatter(lambda v, _pos: _fmt(v, defaults.get("unit", "")))
    ax.tick_params(labelsize=6, colors=MUTED)
    if drawn <= 6:
        ax.legend(fontsize=5, loc="upper left", frameon=False, labelcolor=TEXT)


def _is_loki(panel: dict[str, Any]) -> bool:
    return panel.get("datasource", {}).get("type") == "loki"


def _values(panel: dict[str, Any], fetch: Fetch) -> list[tuple[str, float]]:
    out = []
    for target in panel["targets"]:
        for series in fetch(target["expr"], True):
            out.append((_legend(target.get("legendFormat", ""), series["metric"]), float(series["value"][1])))
    return out


def _stat(ax: Axes, panel: dict[str, Any], fetch: Fetch) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    values = _values(panel, fetch)[:8]
    if not values:
        ax.text(
            0.5,
            0.45,
            defaults.get("noValue", "No data"),
            ha="center",
            va="center",
            fontsize=14,
            color=TEXT,
            transform=ax.transAxes,
        )
        return
    width = 1 / len(values)
    for i, (name, value) in enumerate(values):
        mapped = _mapped(value, defaults.get("mappings", []))
        text, colour = mapped or (
            _fmt(value, defaults.get("unit", "")),
            _colour(value, defaults["thresholds"]["steps"]),
        )
        ax.add_patch(plt.Rectangle((i * width + 0.01, 0.05), width - 0.02, 0.85, color=colour, transform=ax.transAxes))
        ax.text(
            i * width + width / 2,
            0.45,
            text,
            ha="center",
            va="center",
            fontsize=10,
            color="white",
            transform=ax.transAxes,
            weight="bold",
        )
        ax.text(
            i * width + width / 2,
            0.8,
            name[:18],
            ha="center",
            va="center",
            fontsize=6,
            color="white",
            transform=ax.transAxes,
        )


def _bargauge(ax: Axes, panel: dict[str, Any], fetch: Fetch) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    values = sorted(_values(panel, fetch), key=lambda item: item[0])[:14]
    if not values:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", color=MUTED, transform=ax.transAxes)
        return
    names = [name[:24] for name, _ in values]
    numbers = [value for _, value in values]
    colours = [_colour(v, defaults["thresholds"]["steps"]) for v in numbers]
    ax.barh(names, numbers, color=colours)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(lambda v, _pos: _fmt(v, defaults.get("unit", "")))
    ax.tick_params(labelsize=5, colors=MUTED)


def _text_table(ax: Axes, panel: dict[str, Any], fetch: Fetch) -> None:
    if _is_loki(panel):
        ax.text(
            0.5,
            0.5,
            "log lines (Loki): not in the bench",
            ha="center",
            va="center",
            color=MUTED,
            transform=ax.transAxes,
            fontsize=8,
        )
        return
    rows = [f"{name[:60]:<60}  {value:g}" for name, value in _values(panel, fetch)[:10]] or ["no data"]
    ax.text(
        0.01,
        0.95,
        "\n".join(rows),
        ha="left",
        va="top",
        family="monospace",
        fontsize=5,
        color=TEXT,
        transform=ax.transAxes,
    )


DRAW = {"timeseries": _timeseries, "stat": _stat, "bargauge": _bargauge, "table": _text_table, "logs": _text_table}


def render(board_json: str, fetch: Fetch, path: Path, width_px: int = 1920) -> None:
    data = json.loads(board_json)
    panels = [p for p in data["panels"]]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height_px = rows * ROW_UNITS + 60
    fig = plt.figure(figsize=(width_px / 120, height_px / 120), dpi=120, facecolor=BACKGROUND)
    fig.text(0.01, 1 - 25 / height_px, f"{data['title']}  (synthetic data, bench-dashboards)", color=TEXT, fontsize=11)
    top = 50 / height_px
    for panel in panels:
        pos = panel["gridPos"]
        left, width = pos["x"] / 24, pos["w"] / 24
        bottom = 1 - top - (pos["y"] + pos["h"]) * ROW_UNITS / height_px
        height = pos["h"] * ROW_UNITS / height_px
        if panel["type"] == "row":
            fig.text(left + 0.005, bottom + height / 2, panel["title"], color=TEXT, fontsize=9, weight="bold")
            continue
        # Room for tick labels inside the panel, as Grafana draws them.
        margin = 0.035 if panel["type"] in ("timeseries", "bargauge") else 0.004
        if panel["type"] == "bargauge":
            margin = min(0.08, width / 3)
        ax = fig.add_axes((left + margin, bottom + 0.02, width - margin - 0.006, height - 0.045), facecolor=PANEL)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        fig.text(left + 0.006, bottom + height - 0.02, panel["title"], color=TEXT, fontsize=7)
        DRAW.get(panel["type"], _text_table)(ax, panel, fetch)
        if panel["type"] in ("stat", "table", "logs") or not (ax.lines or ax.patches):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.savefig(path, facecolor=BACKGROUND)
    plt.close(fig)
