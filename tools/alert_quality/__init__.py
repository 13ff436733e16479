"""Alert precision and recall, measured by replaying scenarios through real rule evaluation.

A scenario (tests/scenarios/*.yml) is what happened — input series in promtool's notation, laid
over a healthy baseline derived from the inventory — and what a human on call would have wanted
to be told (``expected``). The stack's rendered rules are evaluated by ``promtool test rules``
(Prometheus' own rule engine); every alert instance that fired at any point is read back from
the ``ALERTS`` series and compared with the expectation:

- a fired alert matching an expected entry is a true positive, any other is a false positive
  (``Watchdog`` is excluded: it is the heartbeat to the dead-man receiver, not a notification);
- an expected entry nothing matched (or that fired later than its ``by`` deadline) is missed.

Precision = true positives / fired; recall = expected entries caught / expected entries.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import StackConfig, duration_seconds
from components.inventory import Inventory, build
from components.render import rules

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS_DIR = ROOT / "tests" / "scenarios"
# Written from how these systems fail, not from the rules (issue 13); scored on notifications.
CORPUS_DIR = ROOT / "tests" / "corpus"
HEARTBEAT = "Watchdog"
DEFAULT_STEP = "1m"


class ScenarioError(ValueError):
    """A scenario file that can't be replayed (the message names the file and field)."""


@dataclass(frozen=True)
class Expected:
    alertname: str
    labels: dict[str, str]
    by_seconds: int | None = None

    def matches(self, fired: FiredAlert) -> bool:
        return fired.alertname == self.alertname and all(fired.labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    description: str
    duration: str
    evaluation_interval: str
    interval: str
    series: tuple[dict[str, str], ...]
    expected: tuple[Expected, ...]
    silences: tuple[ScenarioSilence, ...] = ()
    # Alerts that must fire (dashboards show them) but must not be notified (inhibited/silenced).
    visible: tuple[Expected, ...] = ()


@dataclass(frozen=True)
class ScenarioSilence:
    """A silence someone created during the scenario (equality matchers), active from..until."""

    matchers: tuple[tuple[str, str], ...]
    from_seconds: int
    until_seconds: int


@dataclass(frozen=True)
class FiredAlert:
    alertname: str
    labels: dict[str, str]
    first_seconds: float


@dataclass
class Outcome:
    scenario: Scenario
    fired: list[FiredAlert]
    true_positives: list[FiredAlert] = field(default_factory=list)
    false_positives: list[FiredAlert] = field(default_factory=list)
    caught: list[Expected] = field(default_factory=list)
    missed: list[Expected] = field(default_factory=list)
    wanted: tuple[Expected, ...] = ()


# ---------------------------------------------------------------------------------------------
# Scenario files
# ---------------------------------------------------------------------------------------------


def _require(doc: dict[str, Any], key: str, path: Path) -> Any:
    if key not in doc:
        raise ScenarioError(f"{path.name}: missing `{key}`")
    return doc[key]


def _expectations(path: Path, doc: dict[str, Any], key: str) -> tuple[Expected, ...]:
    expected = []
    for i, entry in enumerate(doc.get(key) or []):
        if not isinstance(entry, dict) or "alertname" not in entry:
            raise ScenarioError(f"{path.name}: {key}[{i}] needs `alertname`")
        by = entry.get("by")
        expected.append(
            Expected(
                alertname=entry["alertname"],
                labels={str(k): str(v) for k, v in (entry.get("labels") or {}).items()},
                by_seconds=duration_seconds(by) if by else None,
            )
        )
    return tuple(expected)


def load_scenario(path: Path) -> Scenario:
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise ScenarioError(f"{path.name}: expected a mapping with name, duration, series, expected")
    expected = _expectations(path, doc, "expected")
    series = []
    for i, item in enumerate(doc.get("series") or []):
        if not isinstance(item, dict) or "series" not in item or "values" not in item:
            raise ScenarioError(
                f"{path.name}: series[{i}] needs `series: <selector>` and `values: <promtool notation>`"
            )
        if not isinstance(item["values"], str):
            raise ScenarioError(
                f"{path.name}: series[{i}].values must be a quoted string (YAML reads 0x240 as the number 576)"
            )
        series.append({"series": str(item["series"]), "values": item["values"]})
    try:
        duration = str(_require(doc, "duration", path))
        duration_seconds(duration)
    except ValueError as err:
        raise ScenarioError(f"{path.name}: duration: {err}") from err
    silences = tuple(_silence(path, i, entry, duration) for i, entry in enumerate(doc.get("silences") or []))
    return Scenario(
        name=str(doc.get("name") or path.stem),
        path=path,
        description=str(doc.get("description", "")),
        duration=duration,
        evaluation_interval=str(doc.get("evaluation_interval", DEFAULT_STEP)),
        interval=str(doc.get("interval", DEFAULT_STEP)),
        series=tuple(series),
        expected=expected,
        silences=silences,
        visible=_expectations(path, doc, "visible"),
    )


def _silence(path: Path, index: int, entry: Any, duration: str) -> ScenarioSilence:
    where = f"{path.name}: silences[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("matchers"), dict) or not entry["matchers"]:
        raise ScenarioError(f"{where} needs `matchers: {{label: value, ...}}` (and optional from/until)")
    try:
        start = duration_seconds(str(entry["from"])) if entry.get("from") else 0
        until = duration_seconds(str(entry["until"])) if entry.get("until") else duration_seconds(duration) + 1
    except ValueError as err:
        raise ScenarioError(f"{where}: {err}") from err
    matchers = tuple(sorted((str(k), str(v)) for k, v in entry["matchers"].items()))
    return ScenarioSilence(matchers, start, until)


def load_scenarios(directory: Path = SCENARIOS_DIR) -> list[Scenario]:
    return [load_scenario(p) for p in sorted(directory.glob("*.yml"))]


# ---------------------------------------------------------------------------------------------
# Healthy baseline: what a stack with no problem looks like, from the inventory
# ---------------------------------------------------------------------------------------------

_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_selector(text: str) -> tuple[str, dict[str, str]]:
    match = _SELECTOR.match(text)
    if not match:
        raise ScenarioError(f'not a series selector: {text!r} (write name{{label="value",...}})')
    labels = dict(_LABEL.findall(match.group(2) or ""))
    return match.group(1), labels


def format_selector(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner else name


def _samples(duration: str, interval: str) -> int:
    return duration_seconds(duration) // duration_seconds(interval) + 1


def _clock(offset_seconds: int, duration: str, interval: str) -> str:
    """A timestamp series that reads ``now - offset`` at every sample (promtool starts at 0)."""
    step = duration_seconds(interval)
    return f"{-offset_seconds}+{step}x{_samples(duration, interval)}"


def _node_labels(inventory: Inventory, asset: str) -> dict[str, str]:
    """The labels production gives a series scraped from ``asset``'s node_exporter (textfiles)."""
    entry = next(e for e in inventory.coverage if e.job == "node" and e.asset == asset)
    return {"job": "node", "instance": entry.instance, "asset": asset, "service": entry.service, "tier": entry.tier}


def baseline(config: StackConfig, inventory: Inventory, duration: str, interval: str) -> list[dict[str, str]]:
    """Series of a healthy stack, labelled as production scrapes them: every registered target up,
    probes passing, backups 2h old on every node's hook, PBS jobs and API healthy, drills and
    on-call drills a day old, the silence policy check running without violations."""
    n = _samples(duration, interval)
    series: list[tuple[str, dict[str, str], str]] = []
    for entry in inventory.coverage:
        labels = {"job": entry.job, "instance": entry.instance, "asset": entry.asset, "service": entry.service}
        labels["tier"] = entry.tier
        series.append(("up", labels, f"1x{n}"))
        if entry.job.startswith("blackbox_"):
            series.append(("probe_success", labels, f"1x{n}"))
    for guest in inventory.protected:
        labels = _node_labels(inventory, guest.node)
        labels |= {"vmid": str(guest.vmid), "node": guest.node, "storage": config.backups.storage}
        series.append(("obs_backup_last_success_timestamp_seconds", labels, _clock(2 * 3600, duration, interval)))
        series.append(("obs_backup_last_status", labels, f"1x{n}"))
    for node in sorted({g.node for g in inventory.protected}):
        labels = _node_labels(inventory, node) | {"node": node}
        series.append(("obs_backup_job_last_end_timestamp_seconds", labels, _clock(2 * 3600, duration, interval)))
        series.append(("obs_backup_job_last_status", labels, f"1x{n}"))
    pbs = _node_labels(inventory, config.pbs.host)
    for ds in config.pbs.datastores:
        for job_type in ("gc", "prune", "verify"):
            labels = pbs | {"datastore": ds.name, "job_type": job_type}
            series.append(("obs_pbs_job_last_success_timestamp_seconds", labels, _clock(6 * 3600, duration, interval)))
            series.append(("obs_pbs_job_last_status", labels, f"1x{n}"))
    series.append(("pbs_up", pbs, f"1x{n}"))  # written by the PBS collector, scraped by the node job
    monitoring = _node_labels(inventory, inventory.monitoring[0].name)
    for target in inventory.drill_targets:
        labels = monitoring | {"target": target.name}
        series.append(("obs_restore_drill_last_success_timestamp_seconds", labels, _clock(86400, duration, interval)))
        series.append(("obs_restore_drill_last_status", labels, f"1x{n}"))
    series.append(("obs_oncall_drill_last_success_timestamp_seconds", monitoring, _clock(86400, duration, interval)))
    series.append(("obs_oncall_drill_success", monitoring, f"1x{n}"))
    series.append(("obs_silence_policy_violations", monitoring | {"reason": "too_long"}, f"0x{n}"))
    series.append(("obs_silence_policy_check_up", monitoring, f"1x{n}"))
    series.append(("obs_silence_policy_check_last_run_timestamp_seconds", monitoring, _clock(30, duration, interval)))
    return [{"series": format_selector(name, labels), "values": values} for name, labels, values in series]


def overlay(base: list[dict[str, str]], changes: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """Scenario series replace the baseline series they name (a subset of its labels is enough
    when exactly one baseline series of that metric carries them); others are added."""
    merged = {item["series"]: item["values"] for item in base}
    parsed = [(item["series"], *parse_selector(item["series"])) for item in base]
    for change in changes:
        name, labels = parse_selector(change["series"])
        candidates = [key for key, n, lbls in parsed if n == name and all(lbls.get(k) == v for k, v in labels.items())]
        key = candidates[0] if len(candidates) == 1 else format_selector(name, labels)
        merged[key] = change["values"]
    return [{"series": key, "values": values} for key, values in merged.items()]


# ---------------------------------------------------------------------------------------------
# Replay through promtool
# ---------------------------------------------------------------------------------------------

_GOT = re.compile(r"\{([^{}]*)\} (\S+?)(?:,|$)")


def _parse_got(block: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for labels, value in _GOT.findall(block):
        out.append((dict(_LABEL.findall(labels)), float(value)))
    return out


def _run_promtool(config: StackConfig, scenario: Scenario, queries: list[dict[str, Any]], promtool: str | None) -> str:
    """promtool's output for ``queries`` (each expecting nothing, so promtool prints what it got)
    over the scenario's series laid on the healthy baseline, with the stack's rules loaded."""
    promtool = promtool or shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool not found: apt-get install prometheus")
    inventory = build(config)
    rule_files = rules.rule_files(config, inventory)
    series = overlay(baseline(config, inventory, scenario.duration, scenario.interval), scenario.series)
    test = {
        "rule_files": sorted(rule_files),
        "evaluation_interval": scenario.evaluation_interval,
        "tests": [{"interval": scenario.interval, "input_series": series, "promql_expr_test": queries}],
    }
    with tempfile.TemporaryDirectory(prefix="alert-quality-") as tmp:
        workdir = Path(tmp)
        for file_name, content in rule_files.items():
            (workdir / file_name).write_text(content)
        (workdir / "scenario_test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
        result = subprocess.run(
            [promtool, "test", "rules", "scenario_test.yml"], cwd=workdir, capture_output=True, text=True, check=False
        )
    output = result.stdout + result.stderr
    if result.returncode != 0 and "got:" not in output:
        raise ScenarioError(f"{scenario.path.name}: promtool failed:\n{output.strip()}")
    return output


def replay(config: StackConfig, scenario: Scenario, promtool: str | None = None) -> list[FiredAlert]:
    """Every alert instance that fired during the scenario, with the time it first fired."""
    end = scenario.duration
    firing = 'ALERTS{alertstate="firing"}'
    query = {
        "expr": f"min_over_time(timestamp({firing})[{end}:{scenario.evaluation_interval}])",
        "eval_time": end,
        "exp_samples": [],
    }
    output = _run_promtool(config, scenario, [query], promtool)
    if "got:" not in output:
        return []  # nothing fired at all (not even Watchdog: the rules were not loaded)
    got = output.split("got:", 1)[1].strip()
    fired = []
    for labels, first in _parse_got(got.splitlines()[0] if got != "nil" else ""):
        labels.pop("alertstate", None)
        fired.append(FiredAlert(alertname=labels.pop("alertname"), labels=labels, first_seconds=first))
    return sorted(fired, key=lambda f: (f.alertname, sorted(f.labels.items())))


MAX_STEPS = 400
_TIME = re.compile(r"time: (\S+?),")


def timeline_step(scenario: Scenario) -> int:
    """Seconds between replayed states: the evaluation interval, coarser for long scenarios."""
    evaluation = duration_seconds(scenario.evaluation_interval)
    total = duration_seconds(scenario.duration)
    multiple = max(1, -(-total // (evaluation * MAX_STEPS)))
    return evaluation * multiple


def firing_timeline(
    config: StackConfig, scenario: Scenario, promtool: str | None = None
) -> list[tuple[float, frozenset[tuple[tuple[str, str], ...]]]]:
    """The firing alert set at every step of the scenario (label sets with alertname)."""
    step = timeline_step(scenario)
    times = range(0, duration_seconds(scenario.duration) + 1, step)
    queries = [{"expr": 'ALERTS{alertstate="firing"}', "eval_time": f"{t}s", "exp_samples": []} for t in times]
    output = _run_promtool(config, scenario, queries, promtool)
    firing: dict[float, set[tuple[tuple[str, str], ...]]] = {float(t): set() for t in times}
    for block in output.split("expr:")[1:]:
        at = _TIME.search(block)
        if at is None or "got:" not in block:
            continue
        got = block.split("got:", 1)[1].strip().splitlines()[0]
        for labels, _ in _parse_got(got):
            labels.pop("alertstate", None)
            labels.pop("__name__", None)
            firing[float(duration_seconds(at.group(1)) if at.group(1) != "0s" else 0)].add(
                tuple(sorted(labels.items()))
            )
    return [(t, frozenset(alerts)) for t, alerts in sorted(firing.items())]


def judge(scenario: Scenario, fired: list[FiredAlert], *, notified: bool = False) -> Outcome:
    """Score what fired (``visible`` alerts are wanted too: they must fire) or what was notified
    (only ``expected`` alerts are wanted: a visible one notified is a false positive)."""
    wanted = scenario.expected if notified else scenario.expected + scenario.visible
    outcome = Outcome(scenario=scenario, fired=[f for f in fired if f.alertname != HEARTBEAT], wanted=wanted)
    for alert in outcome.fired:
        hit = any(e.matches(alert) for e in wanted)
        (outcome.true_positives if hit else outcome.false_positives).append(alert)
    for expected in wanted:
        in_time = [
            f
            for f in outcome.fired
            if expected.matches(f) and (expected.by_seconds is None or f.first_seconds <= expected.by_seconds)
        ]
        (outcome.caught if in_time else outcome.missed).append(expected)
    return outcome


@dataclass
class Score:
    fired: int = 0
    true_positives: int = 0
    expected: int = 0
    caught: int = 0

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.fired if self.fired else None

    @property
    def recall(self) -> float | None:
        return self.caught / self.expected if self.expected else None


def scores(outcomes: list[Outcome]) -> tuple[dict[str, Score], Score]:
    per_alert: dict[str, Score] = {}
    total = Score()
    for outcome in outcomes:
        for alert in outcome.fired:
            score = per_alert.setdefault(alert.alertname, Score())
            score.fired += 1
            total.fired += 1
        for alert in outcome.true_positives:
            per_alert[alert.alertname].true_positives += 1
            total.true_positives += 1
        for expected in outcome.wanted:
            score = per_alert.setdefault(expected.alertname, Score())
            score.expected += 1
            total.expected += 1
        for expected in outcome.caught:
            per_alert[expected.alertname].caught += 1
            total.caught += 1
    return dict(sorted(per_alert.items())), total
