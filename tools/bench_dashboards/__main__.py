"""Benchmark every Prometheus query of every dashboard over 24h of synthetic data.

    python -m tools.bench_dashboards [--hosts 50] [--runs 5] [--width 1920] [--fresh]

1. Builds a stack of N assets on top of the example (tools/bench_plan.synthetic_sections: its
   PVE nodes and PBS host plus guests), writes 24h of the series its scrape jobs would collect
   (tools/bench_dashboards/synthetic.py) as OpenMetrics and backfills them with
   `promtool tsdb create-blocks-from openmetrics`.
2. Starts a real Prometheus on a free 127.0.0.1 port over those blocks and backfills the
   recording rules this stack ships (the inventory register included, so coverage is measured
   against the synthetic inventory) with `promtool tsdb create-blocks-from rules`, one
   dependency level at a time (a rule over another rule needs the first one's blocks loaded),
   and lets Prometheus merge the ~3,000 blocks that writes before anything is measured.
3. Runs each panel query as Grafana would for a panel N pixels wide over the last 24h (step from
   Grafana's interval rounding of the range over the panel's max data points, its width unless
   set; ``$__rate_interval`` from the scrape interval), several times, and
   measures the same query with every recording rule replaced by its expression (interleaved,
   so load on the machine weighs on both alike) and prints P50, P95 and max per dashboard and
   overall for both, the speed-up, the five slowest queries and every panel query that returns
   no data.

The blocks are cached in build/bench-dashboards/ (keyed by the generator's source and
parameters): the data sits at a fixed past day, so a rerun skips steps 1-2.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

import dashboards
from components import config as stack_config
from components import inventory as stack_inventory
from components.config import duration_seconds
from components.render.rules import rule_files
from tools.bench_dashboards import synthetic
from tools.bench_plan import synthetic_sections

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "bench-dashboards"
# A fixed past day (2026-01-05T00:00Z): cached blocks stay valid and retention never drops them.
END = 1767571200
DAY = 86400
# Grafana's interval rounding (kbn.roundInterval): upper bound in seconds -> interval.
_ROUNDING = (
    (0.015, 0.01),
    (0.035, 0.02),
    (0.075, 0.05),
    (0.15, 0.1),
    (0.35, 0.2),
    (0.75, 0.5),
    (1.5, 1),
    (3.5, 2),
    (7.5, 5),
    (12.5, 10),
    (17.5, 15),
    (25, 20),
    (45, 30),
    (90, 60),
    (150, 120),
    (450, 300),
    (1350, 600),
    (2700, 900),
    (5400, 1800),
    (9000, 3600),
    (16200, 7200),
    (32400, 10800),
    (86400, 21600),
    (604800, 43200),
)


def grafana_interval(range_seconds: float, width_px: int, min_interval: int) -> int:
    """The ``$__interval`` (= query step) Grafana picks for a panel ``width_px`` wide."""
    raw = range_seconds / width_px
    rounded = next((interval for bound, interval in _ROUNDING if raw < bound), 86400)
    return int(max(rounded, min_interval))


def panel_step(query: dashboards.PanelQuery, width_px: int, scrape: int) -> int:
    """The step Grafana runs ``query`` with over 24h: the range over the panel's max data points
    (its width unless set), at least its min interval (the datasource's scrape interval unless set)."""
    points = min(width_px, query.max_data_points or width_px)
    return grafana_interval(DAY, points, max(scrape, duration_seconds(query.min_interval or "0s")))


def rate_interval(interval: int, scrape: int) -> int:
    """Grafana's ``$__rate_interval``: max($__interval + scrape interval, 4 * scrape interval)."""
    return max(interval + scrape, 4 * scrape)


def substitute(expr: str, interval: int, rate: int, values: dict[str, str] | None = None) -> str:
    """Template variables as the dashboard opens: each at its default (``values``: name -> regex),
    All (``.*``) for the rest."""
    expr = expr.replace("$__rate_interval", f"{rate}s").replace("$__interval", f"{interval}s")
    chosen = values or {}
    return re.sub(r"\$\{?(\w+)(?::\w+)?\}?", lambda m: chosen.get(m.group(1), ".*"), expr)


def default_values(url: str, board: dashboards.Board) -> dict[str, str]:
    """Variables without an All option open on their first value, as Grafana does."""
    values: dict[str, str] = {}
    for variable in json.loads(board.json).get("templating", {}).get("list", []):
        if variable.get("includeAll") or variable.get("datasource", {}).get("type") != "prometheus":
            continue
        match = re.fullmatch(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)", variable["query"])
        if match is None:
            raise ValueError(f"{board.name}: cannot resolve variable {variable['name']}")
        selector = substitute(match.group("selector"), 60, 75, values)
        response = requests.get(
            f"{url}/api/v1/label/{match.group('label')}/values",
            params={"match[]": selector, "start": str(END - DAY), "end": str(END)},
            timeout=30,
        )
        found = sorted(response.json()["data"])
        # Regex-escaped inside a PromQL string literal (a backslash is written twice there).
        values[variable["name"]] = re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", found[0]) if found else ".*"
    return values


# --- Recording rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingRule:
    name: str
    expr: str
    labels: tuple[tuple[str, str], ...]
    interval: str | None  # the group's evaluation interval, None for the global one


# Rules that record a constant (``vector(1)`` with labels): the inventory register. They are data
# the stack ships, not a shortcut a raw query could take, so they stay as they are without rules.
_CONSTANT = re.compile(r"vector\([\d.e+]+\)")


def recording_rules(config: stack_config.StackConfig, inventory: stack_inventory.Inventory) -> list[RecordingRule]:
    """Every recording rule this stack ships (one per series of the register), in file order."""
    rules = []
    for text in rule_files(config, inventory).values():
        for group in (yaml.safe_load(text) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "record" in rule:
                    labels = tuple(sorted((rule.get("labels") or {}).items()))
                    rules.append(
                        RecordingRule(rule["record"], str(rule["expr"]).strip(), labels, group.get("interval"))
                    )
    return rules


def shortcuts(rules: list[RecordingRule]) -> dict[str, tuple[str, str | None]]:
    """record name -> (expr, interval) of the rules a raw query would spell out (not the register)."""
    return {r.name: (r.expr, r.interval) for r in rules if not _CONSTANT.fullmatch(r.expr)}


def _uses(expr: str, name: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr) is not None


def levels(rules: dict[str, tuple[str, str | None]]) -> list[list[str]]:
    """Rules grouped so that each level only reads raw series and earlier levels."""
    done: set[str] = set()
    out: list[list[str]] = []
    while len(done) < len(rules):
        ready = [
            n for n, (e, _) in rules.items() if n not in done and all(not _uses(e, o) for o in rules if o not in done)
        ]
        if not ready:
            raise ValueError(f"recording rules depend on each other in a cycle: {sorted(set(rules) - done)}")
        out.append(sorted(ready))
        done |= set(ready)
    return out


_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}


def _blank(match: re.Match[str], keep_ends: bool = False) -> str:
    text = match.group(0)
    return text[0] + " " * (len(text) - 2) + text[-1] if keep_ends else " " * len(text)


def push_matchers(body: str, matchers: list[str]) -> str:
    """Add label matchers to every vector selector of ``body`` (as someone writing the query
    without the recording rule would): valid because the rules keep the labels panels filter on."""
    if not matchers:
        return body
    masked = re.sub(r'"(?:\\.|[^"\\])*"', lambda m: _blank(m, keep_ends=True), body)
    masked = re.sub(r"\{[^}]*\}", lambda m: _blank(m, keep_ends=True), masked)
    masked = re.sub(r"\[[^\]]*\]", _blank, masked)
    masked = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", _blank, masked)
    inserts: list[tuple[int, str]] = []
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", masked):
        if match.group(2) or match.group(1).lower() in _KEYWORDS:
            continue
        end = match.end(1)
        if masked[end : end + 1] == "{":
            close = masked.index("}", end)
            inserts.append((close, ", " + ", ".join(matchers)))
        else:
            inserts.append((end, "{" + ", ".join(matchers) + "}"))
    for position, text in sorted(inserts, reverse=True):
        body = body[:position] + text + body[position:]
    return body


def inline(expr: str, rules: dict[str, tuple[str, str | None]]) -> str:
    """The expression with every recording rule replaced by what it records; the selector's
    narrowing matchers move onto the raw series (all-matching ones, and those the rule already
    applies, are dropped)."""
    for _ in range(10):
        changed = False
        for name, (body, _) in rules.items():
            pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(\{{[^}}]*\}})?(?![\w:])")

            def expand(match: re.Match[str], body: str = body) -> str:
                matchers = re.findall(r'\w+\s*(?:=~|!~|!=|=)\s*"[^"]*"', match.group(1) or "")
                narrowing = [m for m in matchers if not re.fullmatch(r'\w+=~"\.\*"', m) and m not in body]
                return f"({push_matchers(body, narrowing)})"

            new = pattern.sub(expand, expr)
            changed |= new != expr
            expr = new
        if not changed:
            return expr
    raise ValueError(f"recording rules nest too deep in {expr}")


# --- Prometheus ----------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def prometheus(data: Path, workdir: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus not found: apt-get install prometheus")
    port = _free_port()
    config = workdir / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\n")
    log = (workdir / "prometheus.log").open("ab")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--query.max-samples=200000000",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"prometheus did not start: see {workdir / 'prometheus.log'}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _counter(url: str, name: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=30).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def overlapping_blocks(data: Path) -> int:
    """How many blocks in ``data`` overlap an earlier one in time. `promtool tsdb create-blocks-from
    rules` writes one block per rule and 2h window (prometheus/prometheus cmd/promtool/rules.go,
    importRule), ~3,000 here; until Prometheus merges them every query opens every block, which a
    Prometheus that evaluates the rules itself never does."""
    spans = []
    for meta in data.glob("*/meta.json"):
        # Not a block being written or deleted (<ulid>.tmp-for-creation, .tmp-for-deletion).
        with contextlib.suppress(OSError, ValueError):
            if "." not in meta.parent.name:
                block = json.loads(meta.read_text())
                spans.append((block["minTime"], block["maxTime"]))
    overlaps, reach = 0, -1
    for start, end in sorted(spans):
        overlaps += start < reach
        reach = max(reach, end)
    return overlaps


def settle(data: Path, work: Path) -> None:
    """Let Prometheus compact the backfilled blocks: until none overlap and no compaction has run
    for 90s, so measurements never race a compaction (its compactor wakes every minute, and merging
    ~3,000 blocks takes it minutes on a loaded machine)."""
    with prometheus(data, work) as url:
        began, quiet_since = time.monotonic(), time.monotonic()
        last: float | None = None
        while time.monotonic() - began < 1800:
            count: float | None = None  # Prometheus too busy compacting to answer: not quiet
            with contextlib.suppress(requests.RequestException):
                count = _counter(url, "prometheus_tsdb_compactions_total")
            if count is None or count != last:
                last, quiet_since = count, time.monotonic()
            if time.monotonic() - quiet_since > 90 and overlapping_blocks(data) == 0:
                return
            time.sleep(5)
        raise SystemExit(f"Prometheus left {overlapping_blocks(data)} overlapping blocks in {data} after 30 minutes")


def _step(message: str) -> float:
    print(f"[bench-dashboards] {message}", flush=True)
    return time.monotonic()


def _rule_groups(names: list[str], rules: list[RecordingRule]) -> list[dict[str, Any]]:
    """One group per record name, holding every rule of that name (the register has many)."""
    groups = []
    for name in names:
        mine = [r for r in rules if r.name == name]
        rows = [{"record": name, "expr": r.expr, **({"labels": dict(r.labels)} if r.labels else {})} for r in mine]
        groups.append({"name": name, **({"interval": mine[0].interval} if mine[0].interval else {}), "rules": rows})
    return groups


def build_blocks(
    data: Path,
    stack: tuple[stack_config.StackConfig, stack_inventory.Inventory],
    scrape: int,
    eval_interval: int,
    rules: list[RecordingRule],
) -> None:
    """Raw series and backfilled recording rules in ``data`` (a Prometheus storage directory)."""
    config, inventory = stack
    promtool = shutil.which("promtool")
    if promtool is None:
        raise SystemExit("promtool not found: apt-get install prometheus")
    with tempfile.TemporaryDirectory(prefix="bench-dashboards-") as tmp:
        work = Path(tmp)
        t = _step(f"writing 24h of synthetic series for {len(config.assets)} assets (OpenMetrics)")
        written = synthetic.write(work / "series.om", config, inventory, start=END - DAY, end=END, scrape_step=scrape)
        t = _step(
            f"  {written.series} series, {written.samples:,} samples in {time.monotonic() - t:.0f}s; promtool backfill"
        )
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(work / "series.om"), str(data)],
            check=True,
        )
        (work / "series.om").unlink()
        _step(f"  raw blocks written in {time.monotonic() - t:.0f}s")
        by_name = {r.name: ("\n".join(x.expr for x in rules if x.name == r.name), r.interval) for r in rules}
        for depth, names in enumerate(levels(by_name), start=1):
            t = _step(f"backfilling recording rules, level {depth}: {', '.join(names)}")
            rule_file = work / f"level{depth}.yml"
            rule_file.write_text(yaml.safe_dump({"groups": _rule_groups(names, rules)}))
            out = work / f"rules{depth}"
            with prometheus(data, work) as url:
                subprocess.run(
                    [
                        promtool,
                        "tsdb",
                        "create-blocks-from",
                        "rules",
                        "-q",
                        f"--url={url}",
                        f"--start={END - DAY}",
                        f"--end={END}",
                        f"--eval-interval={eval_interval}s",
                        f"--output-dir={out}",
                        str(rule_file),
                    ],
                    check=True,
                )
            for block in out.iterdir():
                shutil.move(str(block), data / block.name)
            _step(f"  done in {time.monotonic() - t:.0f}s")
        t = _step("letting Prometheus compact the backfilled blocks (once; cached afterwards)")
        settle(data, work)
        _step(f"  done in {time.monotonic() - t:.0f}s")


# --- Queries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    dashboard: str
    panel: str
    expr: str
    seconds: list[float]
    series: int


def run_query(url: str, expr: str, instant: bool, step: int) -> tuple[float, int]:
    if instant:
        request = ("query", {"query": expr, "time": END})
    else:
        start = (END - DAY) // step * step
        request = ("query_range", {"query": expr, "start": start, "end": END // step * step, "step": step})
    began = time.perf_counter()
    response = requests.post(f"{url}/api/v1/{request[0]}", data=request[1], timeout=120)
    took = time.perf_counter() - began
    body = response.json()
    if body.get("status") != "success":
        raise SystemExit(f"query failed: {expr}\n  {body.get('error')}")
    return took, len(body["data"]["result"])


@dataclass(frozen=True)
class Pair:
    """One panel query as the dashboard runs it (``fast``) and spelled out on raw series."""

    query: dashboards.PanelQuery
    fast: str
    slow: str
    step: int


def measure(url: str, pairs: list[Pair], runs: int) -> tuple[list[Timed], list[Timed]]:
    """Each query with and without recording rules, runs interleaved so load on the machine
    weighs on both sides alike."""
    with_rules, without = [], []
    for pair in pairs:
        query = pair.query
        timings: dict[str, list[float]] = {pair.fast: [], pair.slow: []}
        counts: dict[str, int] = {}
        for _ in range(runs):
            for expr in dict.fromkeys((pair.fast, pair.slow)):  # a query without recording rules runs once
                took, counts[expr] = run_query(url, expr, query.instant, pair.step)
                timings[expr].append(took)
        with_rules.append(Timed(query.dashboard, query.panel, pair.fast, timings[pair.fast], counts[pair.fast]))
        without.append(Timed(query.dashboard, query.panel, pair.slow, timings[pair.slow], counts[pair.slow]))
    return with_rules, without


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(rows: list[Timed]) -> tuple[float, float, float, float]:
    """P50, P95, max over every run of every query; load = sum of the per-query medians (what
    opening the dashboard costs Prometheus)."""
    samples = [s for row in rows for s in row.seconds]
    load = sum(statistics.median(row.seconds) for row in rows)
    return _pct(samples, 0.5), _pct(samples, 0.95), max(samples), load


def report(with_rules: list[Timed], without: list[Timed]) -> str:
    names = list(dict.fromkeys(row.dashboard for row in with_rules))
    lines = [
        "P50/P95/max over every run of every query; load = sum of per-query medians; speed-up = raw / recorded,",
        "both measured side by side in this run.",
        "",
        f"{'dashboard':<10} {'queries':>7} | {'recorded P50':>12} {'P95':>6} {'max':>6} {'load':>6} | "
        f"{'raw P50':>7} {'P95':>6} {'max':>6} {'load':>6} | {'speed-up P95':>12} {'load':>5}",
    ]
    for name in [*names, "overall"]:
        mine = [r for r in with_rules if name in ("overall", r.dashboard)]
        raw = [r for r in without if name in ("overall", r.dashboard)]
        p50, p95, top, load = _summary(mine)
        r50, r95, rtop, rload = _summary(raw)
        lines.append(
            f"{name:<10} {len(mine):>7} | {p50 * 1000:12.1f} {p95 * 1000:6.1f} {top * 1000:6.1f} {load * 1000:6.0f} | "
            f"{r50 * 1000:7.1f} {r95 * 1000:6.1f} {rtop * 1000:6.1f} {rload * 1000:6.0f} | "
            f"{r95 / p95:11.1f}x {rload / load:4.1f}x"
        )
    slowest = sorted(with_rules, key=lambda r: -statistics.median(r.seconds))[:5]
    lines += ["", "five slowest queries as the dashboards run them (median ms, series returned):"]
    lines += [
        f"  {statistics.median(r.seconds) * 1000:7.1f}  {r.series:4d}  {r.dashboard}/{r.panel}: {r.expr[:90]}"
        for r in slowest
    ]
    empty = [r for r in with_rules if r.series == 0]
    lines += ["", f"panel queries with no data: {len(empty)}"]
    lines += [f"  {r.dashboard}/{r.panel}: {r.expr[:100]}" for r in empty]
    return "\n".join(lines)


def draw(
    url: str, boards: list[dashboards.Board], directory: Path, *, interval: int, rate: int, all_hosts: bool
) -> None:
    from tools.bench_dashboards import pictures

    directory.mkdir(parents=True, exist_ok=True)
    for board in boards:
        values = {} if all_hosts else default_values(url, board)

        def fetch(expr: str, instant: bool, values: dict[str, str] = values) -> list[dict[str, Any]]:
            query = substitute(expr, interval, rate, values)
            window = {"time": END} if instant else {"start": END - DAY, "end": END, "step": interval}
            response = requests.post(
                f"{url}/api/v1/{'query' if instant else 'query_range'}", data={"query": query, **window}, timeout=120
            )
            return list(response.json()["data"]["result"])

        pictures.render(board.json, fetch, directory / f"{board.name}.png")
        _step(f"  drew {directory / board.name}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_dashboards", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50, help="assets of the synthetic stack")
    parser.add_argument("--runs", type=int, default=5, help="runs per query")
    parser.add_argument("--width", type=int, default=1920, help="panel width in pixels (= Grafana's maxDataPoints)")
    parser.add_argument("--all", action="store_true", help="every variable on All (worst case), not its default")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached blocks")
    parser.add_argument("--pictures", type=Path, help="also draw each dashboard from the bench data into DIR/*.png")
    args = parser.parse_args(argv)

    config = stack_config.validate(synthetic_sections(args.hosts))
    inventory = stack_inventory.build(config)
    scrape = duration_seconds(config.monitoring.scrape_interval)
    eval_interval = duration_seconds(config.monitoring.evaluation_interval)
    rules = recording_rules(config, inventory)
    inputs = Path(synthetic.__file__).read_text() + repr((args.hosts, scrape, eval_interval, rules))
    fingerprint = hashlib.sha256(inputs.encode()).hexdigest()[:12]
    data = CACHE / f"tsdb-{fingerprint}"
    if args.fresh or not (data / ".complete").exists():
        shutil.rmtree(CACHE, ignore_errors=True)
        data.mkdir(parents=True)
        build_blocks(data, (config, inventory), scrape, eval_interval, rules)
        (data / ".complete").write_text(fingerprint)
    else:
        _step(f"reusing cached blocks {data.relative_to(ROOT)} (--fresh rebuilds them)")
        if overlapping_blocks(data):  # cached by an earlier bench that stopped before the merge
            t = _step(f"  {overlapping_blocks(data)} overlapping blocks: letting Prometheus compact them")
            with tempfile.TemporaryDirectory(prefix="bench-dashboards-") as tmp:
                settle(data, Path(tmp))
            _step(f"  done in {time.monotonic() - t:.0f}s")

    interval = grafana_interval(DAY, args.width, scrape)
    rate = rate_interval(interval, scrape)
    boards = dashboards.render(config)
    skipped = sum(1 for b in boards for q in dashboards.panel_queries(b) if q.datasource != "prometheus")
    spelled_out = shortcuts(rules)

    with tempfile.TemporaryDirectory(prefix="bench-dashboards-") as tmp, prometheus(data, Path(tmp)) as url:
        pairs = []
        for board in boards:
            values = {} if args.all else default_values(url, board)
            for q in dashboards.panel_queries(board):
                if q.datasource == "prometheus":
                    step = panel_step(q, args.width, scrape)
                    fast = substitute(q.expr, step, rate_interval(step, scrape), values)
                    pairs.append(Pair(q, fast, inline(fast, spelled_out), step))
        t = _step(
            f"{len(pairs)} Prometheus queries x {args.runs} runs over 24h, step {interval}s "
            f"($__rate_interval {rate}s) for a {args.width}px panel, variables "
            f"{'all on All' if args.all else 'at their defaults'}; {skipped} LogQL queries not run (no Loki here)"
        )
        measure(url, pairs, 1)  # warm the page cache
        timed_rules, timed_raw = measure(url, pairs, args.runs)
        _step(f"  done in {time.monotonic() - t:.0f}s")
        if args.pictures:
            draw(url, boards, args.pictures, interval=interval, rate=rate, all_hosts=args.all)
    print()
    print(report(timed_rules, timed_raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
