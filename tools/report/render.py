"""Turn a Report into Markdown, HTML and PNG plots (matplotlib), from one list of blocks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tools.report.figures import DAY, Point, Report

GIB = 1024**3
SEVERITY_COLOURS = {"critical": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
FORECAST_DAYS = 30
LINE_STYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class Block:
    kind: str  # h1 | h2 | p | table | img
    text: str = ""
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


# --- formatting -------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 3_600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / DAY:.1f} d"


def when(t: float | None) -> str:
    return "never" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / GIB:,.1f} GiB"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "yes" if ok else "NO"


def _dates(timestamps: list[float]) -> Any:
    """Matplotlib date numbers (what a date axis plots) for unix timestamps."""
    return mdates.date2num([dt.datetime.fromtimestamp(t, dt.UTC) for t in timestamps])


def _times(points: list[Point]) -> Any:
    return _dates([t for t, _ in points])


# --- plots ------------------------------------------------------------------------------------


def _figure() -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _save(fig: Figure, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name)
    plt.close(fig)
    return name


def plot_coverage(report: Report, out: Path) -> str | None:
    cov = report.coverage
    if not cov.points:
        return None
    fig, ax = _figure()
    x, y = _times(cov.points), [v * 100 for _, v in cov.points]
    ax.plot(x, y, color="#2e7d32", label="scraped / registered targets")
    ax.axhline(cov.target * 100, color="#c62828", linestyle="--", label=f"target {cov.target:.0%}")
    ax.fill_between(x, y, cov.target * 100, where=[v < cov.target * 100 for v in y], color="#c62828", alpha=0.25)
    ax.set_ylabel("scrape coverage (%)")
    ax.set_ylim(min(*y, cov.target * 100) - 5, 101)
    ax.set_title("Scrape coverage against the 95% target")
    ax.legend(loc="lower left")
    _time_axis(ax)
    return _save(fig, out, "coverage.png")


def plot_alerts(report: Report, out: Path) -> str | None:
    groups = report.alerts.groups
    if not groups:
        return None
    services = sorted({g.service for g in groups})
    fig, ax = _figure()
    left = [0] * len(services)
    for severity, colour in SEVERITY_COLOURS.items():
        counts = [sum(g.episodes for g in groups if g.service == s and g.severity == severity) for s in services]
        ax.barh(services, counts, left=left, color=colour, label=severity)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("firing episodes (Watchdog excluded)")
    ax.set_title("Alerts by service and severity")
    ax.legend(loc="best")
    return _save(fig, out, "alerts.png")


def plot_notifications(report: Report, out: Path) -> str | None:
    rows = report.notifications
    if not rows:
        return None
    fig, ax = _figure()
    names = [r.name for r in rows]
    positions = range(len(names))
    ax.bar([p - 0.2 for p in positions], [r.sent for r in rows], width=0.4, color="#1565c0", label="sent")
    ax.bar([p + 0.2 for p in positions], [r.failed for r in rows], width=0.4, color="#c62828", label="failed")
    ax.set_xticks(list(positions), names)
    ax.set_ylabel("notifications in the window")
    ax.set_title("Alertmanager notifications by integration")
    ax.legend()
    return _save(fig, out, "notifications.png")


def plot_backups(report: Report, out: Path) -> str | None:
    guests = [g for g in report.backups if g.ages]
    if not guests:
        return None
    fig, ax = _figure()
    for i, g in enumerate(guests):
        # guests backed up by the same job share a sawtooth: vary the style so none hides another
        style = LINE_STYLES[i % len(LINE_STYLES)]
        ax.plot(_times(g.ages), [a / 3_600 for _, a in g.ages], linestyle=style, label=f"{g.vmid} on {g.node}")
    rpo_h = report.budgets.rpo_seconds / 3_600
    ax.axhline(rpo_h, color="#c62828", linewidth=2, label=f"RPO {rpo_h:g} h")
    ax.set_ylabel("age of the last good backup (h)")
    ax.set_title("Last good backup per guest against the RPO")
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    _time_axis(ax)
    return _save(fig, out, "backups.png")


def plot_drills(report: Report, out: Path) -> str | None:
    targets = [t for t in report.drills if t.runs]
    if not targets:
        return None
    fig, (rto_ax, rpo_ax) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    for ax, attr, budget, label in (
        (rto_ax, "rto_seconds", report.budgets.rto_seconds, "RTO"),
        (rpo_ax, "rpo_seconds", report.budgets.rpo_seconds, "RPO"),
    ):
        for i, target in enumerate(targets):
            for run in target.runs:
                value = getattr(run, attr)
                if value is None:
                    continue
                colour = "#2e7d32" if run.status == 1 else "#c62828"
                ax.scatter([i], [value / 3_600], color=colour, s=60, zorder=3)
        ax.axhline(budget / 3_600, color="#c62828", linestyle="--", label=f"{label} budget {budget / 3_600:g} h")
        ax.set_xticks(range(len(targets)), [t.target for t in targets])
        ax.set_ylabel(f"{label} (h)")
        ax.set_title(f"Restore drill {label} (green ok, red failed)", fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out, "restore-drills.png")


def plot_datastores(report: Report, out: Path) -> str | None:
    stores = [d for d in report.datastores if d.used]
    if not stores:
        return None
    fig, ax = _figure()
    for d in stores:
        line = ax.plot(_times(d.used), [v / GIB for _, v in d.used], label=f"{d.name} used")[0]
        colour = line.get_color()
        if d.size:
            ax.axhline(d.size / GIB, color=colour, linestyle=":", label=f"{d.name} size")
        if d.slope_per_day and d.used_now is not None:
            t_end = d.used[-1][0]
            horizon = [t_end, t_end + FORECAST_DAYS * DAY]
            ax.plot(
                _dates(horizon),
                [d.used_now / GIB, (d.used_now + d.slope_per_day * FORECAST_DAYS) / GIB],
                color=colour,
                linestyle="--",
            )
    ax.set_ylabel("GiB")
    ax.set_title(f"PBS datastore usage with a {FORECAST_DAYS}-day linear forecast (dashed)")
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    _time_axis(ax)
    return _save(fig, out, "pbs-datastores.png")


# --- document ---------------------------------------------------------------------------------


def summary_rows(report: Report) -> list[tuple[str, ...]]:
    b, cov, mtta = report.budgets, report.coverage, report.mtta
    sent = sum(i.sent for i in report.notifications)
    failed = sum(i.failed for i in report.notifications)
    within_rpo = [g for g in report.backups if g.within(b.rpo_seconds)]
    drills_ok = [t for t in report.drills if t.last is not None and t.last.within(b)]
    filling = [d for d in report.datastores if d.days_to_full is not None and d.days_to_full < FORECAST_DAYS]
    return [
        (
            "Scrape coverage",
            f">= {b.coverage_target:.0%} of registered targets",
            f"at target {pct(cov.time_at_target)} of the time; mean {pct(cov.mean)}, min {pct(cov.minimum)}",
            verdict(None if cov.time_at_target is None else cov.time_at_target == 1.0),
        ),
        ("Alert episodes", "-", f"{report.alerts.total_episodes} (Watchdog excluded)", "-"),
        (
            "Notifications failed",
            "0",
            f"{failed:.0f} of {sent:.0f} ({pct(failed / sent if sent else None)})",
            verdict(failed == 0 if sent else None),
        ),
        (
            "MTTA",
            f"<= {duration(b.mtta_seconds)}",
            f"{duration(mtta.seconds)} over {mtta.acknowledgements:.0f} acknowledgements",
            verdict(None if mtta.seconds is None else mtta.seconds <= b.mtta_seconds),
        ),
        (
            "On-call drills",
            ">= 1 in the window",
            f"{len(report.oncall.successes)} (last {when(report.oncall.last_success)})",
            verdict(bool(report.oncall.successes)),
        ),
        (
            "Backups within RPO",
            f"every guest, RPO {duration(b.rpo_seconds)}",
            f"{len(within_rpo)} of {len(report.backups)} guests",
            verdict(len(within_rpo) == len(report.backups) if report.backups else None),
        ),
        (
            "Restore drills",
            f"last drill ok within RTO {duration(b.rto_seconds)} and RPO {duration(b.rpo_seconds)}",
            f"{len(drills_ok)} of {len(report.drills)} targets",
            verdict(len(drills_ok) == len(report.drills) if report.drills else None),
        ),
        (
            "PBS datastores",
            f"none full within {FORECAST_DAYS} d",
            f"{len(filling)} of {len(report.datastores)} filling up",
            verdict(not filling if report.datastores else None),
        ),
    ]


Images = dict[str, str | None]


def _image(images: Images, key: str, alt: str) -> list[Block]:
    return [Block("img", text=str(images[key]), headers=(alt,))] if images.get(key) else []


def _intro(report: Report) -> list[Block]:
    w = report.window
    return [
        Block("h1", f"Platform report {when(w.start)} to {when(w.end)}"),
        Block(
            "p",
            f"Prometheus {report.prometheus}, {duration(w.seconds)} window sampled every {w.step:.0f} s. "
            "Each figure below is computed from the series named in its section.",
        ),
        Block("h2", "Summary"),
        Block("table", headers=("promise", "target", "measured", "met"), rows=tuple(summary_rows(report))),
    ]


def _coverage(report: Report, images: Images) -> list[Block]:
    cov = report.coverage
    return [
        Block("h2", "Scrape coverage"),
        Block(
            "p",
            f"Source: {cov.query}. Mean {pct(cov.mean)}, minimum {pct(cov.minimum)}, "
            f"at or above {cov.target:.0%} during {pct(cov.time_at_target)} of the window.",
        ),
        *_image(images, "coverage", "scrape coverage over time against the target"),
    ]


def _alerts(report: Report, images: Images) -> list[Block]:
    return [
        Block("h2", "Alerts by severity and service"),
        Block("p", "Firing episodes and firing time from ALERTS (Watchdog excluded; pending alerts not counted)."),
        Block(
            "table",
            headers=("severity", "service", "episodes", "firing time"),
            rows=tuple(
                (g.severity, g.service, str(g.episodes), duration(g.firing_seconds)) for g in report.alerts.groups
            ),
        ),
        *_image(images, "alerts", "alert episodes by service and severity"),
        Block(
            "table",
            headers=("alert", "severity", "service", "episodes", "firing time"),
            rows=tuple(
                (a.alertname, a.severity, a.service, str(a.episodes), duration(a.firing_seconds))
                for a in report.alerts.alerts
            ),
        ),
    ]


def _notifications(report: Report, images: Images) -> list[Block]:
    return [
        Block("h2", "Notifications"),
        Block("p", "Increase of alertmanager_notifications_total and alertmanager_notifications_failed_total."),
        Block(
            "table",
            headers=("integration", "sent", "failed", "failure ratio"),
            rows=tuple(
                (i.name, f"{i.sent:.0f}", f"{i.failed:.0f}", pct(i.failure_ratio)) for i in report.notifications
            ),
        ),
        *_image(images, "notifications", "notifications sent and failed per integration"),
    ]


def _acknowledgements(report: Report) -> list[Block]:
    mtta, oncall, b = report.mtta, report.oncall, report.budgets
    return [
        Block("h2", "Acknowledgement and on-call drills"),
        Block(
            "p",
            f"MTTA {duration(mtta.seconds)} over {mtta.acknowledgements:.0f} acknowledgements "
            f"(obs_alert_ack_seconds; target {duration(b.mtta_seconds)}). "
            f"On-call drills succeeded in the window: {len(oncall.successes)}; "
            f"last success {when(oncall.last_success)} "
            f"({duration(oncall.age_seconds)} before the end of the window).",
        ),
        Block("table", headers=("on-call drill succeeded at",), rows=tuple((when(t),) for t in oncall.successes)),
    ]


def _backups(report: Report, images: Images) -> list[Block]:
    w, b = report.window, report.budgets
    return [
        Block("h2", "Backups per guest"),
        Block(
            "p",
            f"Good nights: distinct successful backups in the window, of {w.nights} nights. "
            f"Max age: the oldest the newest good backup got during the window, against the RPO of "
            f"{duration(b.rpo_seconds)}.",
        ),
        Block(
            "table",
            headers=(
                *("vmid", "node", "storage", "good nights", "success rate"),
                *("last age", "max age", "RPO met", "last run"),
            ),
            rows=tuple(
                (
                    g.vmid,
                    g.node,
                    g.storage,
                    f"{g.successes}/{g.nights}",
                    pct(g.success_rate),
                    duration(g.last_age_seconds),
                    duration(g.max_age_seconds),
                    verdict(g.within(b.rpo_seconds)),
                    {1.0: "ok", 0.0: "FAILED"}.get(g.last_status, "n/a") if g.last_status is not None else "n/a",
                )
                for g in report.backups
            ),
        ),
        *_image(images, "backups", "age of the last good backup per guest against the RPO"),
    ]


def _drills(report: Report, images: Images) -> list[Block]:
    b = report.budgets
    return [
        Block("h2", "Restore drills"),
        Block(
            "table",
            headers=("target", "drill at", "outcome", "RTO", "RPO", "within budgets"),
            rows=tuple(
                (
                    t.target,
                    when(r.timestamp),
                    "ok" if r.status == 1 else "FAILED",
                    duration(r.rto_seconds),
                    duration(r.rpo_seconds),
                    verdict(r.within(b)),
                )
                for t in report.drills
                for r in t.runs
            ),
        ),
        Block(
            "p",
            "Targets without a drill in the window: "
            + (", ".join(t.target for t in report.drills if not t.runs) or "none")
            + ".",
        ),
        *_image(images, "drills", "restore drill RTO and RPO per target against the budgets"),
    ]


def _datastores(report: Report, images: Images) -> list[Block]:
    return [
        Block("h2", "PBS datastores"),
        Block(
            "table",
            headers=("datastore", "used", "size", "usage", "growth per day", "full in"),
            rows=tuple(
                (
                    d.name,
                    gib(d.used_now),
                    gib(d.size),
                    pct(d.usage),
                    gib(d.slope_per_day),
                    duration(d.days_to_full * DAY) if d.days_to_full is not None else "not filling",
                )
                for d in report.datastores
            ),
        ),
        *_image(images, "datastores", "PBS datastore usage and forecast"),
    ]


def blocks(report: Report, images: Images) -> list[Block]:
    """The report's sections, in reading order."""
    return [
        *_intro(report),
        *_coverage(report, images),
        *_alerts(report, images),
        *_notifications(report, images),
        *_acknowledgements(report),
        *_backups(report, images),
        *_drills(report, images),
        *_datastores(report, images),
    ]


def markdown(doc: list[Block]) -> str:
    lines: list[str] = []
    for block in doc:
        if block.kind == "h1":
            lines += [f"# {block.text}", ""]
        elif block.kind == "h2":
            lines += [f"## {block.text}", ""]
        elif block.kind == "p":
            lines += [block.text, ""]
        elif block.kind == "img":
            lines += [f"![{block.headers[0]}]({block.text})", ""]
        elif block.kind == "table":
            if not block.rows:
                lines += ["(no data in this window)", ""]
                continue
            lines.append("| " + " | ".join(block.headers) + " |")
            lines.append("|" + "|".join("---" for _ in block.headers) + "|")
            lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
            lines.append("")
    return "\n".join(lines)


HTML = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f3f3f3; text-align: left; } img { max-width: 100%; }
</style></head><body>
{% for b in blocks %}
{%- if b.kind == "h1" %}<h1>{{ b.text }}</h1>
{%- elif b.kind == "h2" %}<h2>{{ b.text }}</h2>
{%- elif b.kind == "p" %}<p>{{ b.text }}</p>
{%- elif b.kind == "img" %}<p><img src="{{ b.text }}" alt="{{ b.headers[0] }}"></p>
{%- elif b.kind == "table" %}{% if b.rows %}<table><tr>{% for h in b.headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in b.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>{% else %}<p>(no data in this window)</p>{% endif %}
{%- endif %}
{% endfor %}</body></html>
"""
)


def html(doc: list[Block]) -> str:
    return HTML.render(title=doc[0].text, blocks=doc)


PLOTS = {
    "coverage": plot_coverage,
    "alerts": plot_alerts,
    "notifications": plot_notifications,
    "backups": plot_backups,
    "drills": plot_drills,
    "datastores": plot_datastores,
}


def write(report: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    images = {key: plot(report, out) for key, plot in PLOTS.items()}
    doc = blocks(report, images)
    (out / "report.md").write_text(markdown(doc))
    (out / "report.html").write_text(html(doc))
    return [out / "report.md", out / "report.html", *(out / name for name in images.values() if name)]
