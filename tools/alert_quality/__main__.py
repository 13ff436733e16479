"""`make alert-quality`: replay both corpora (tests/scenarios, written with the rules, and
tests/corpus, written from how the systems fail) through the stack's rules (promtool) and its
rendered Alertmanager config (a real Alertmanager: inhibitions and silences), print precision and
recall per alert and overall for what fires and for what is notified, draw them, and fail when
notifications fall below the targets (precision 99%, recall 100%)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from components.config import ConfigError, StackConfig
from components.inventory import build
from tools.alert_quality import (
    CORPUS_DIR,
    SCENARIOS_DIR,
    Outcome,
    Scenario,
    ScenarioError,
    Score,
    firing_timeline,
    judge,
    load_scenarios,
    replay,
    scores,
)
from tools.alert_quality.notify import Alertmanager, ReplayError, notifications
from tools.rules import load_stack


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _describe(alert_name: str, labels: dict[str, str]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("severity", "tier"))
    return f"{alert_name}{{{shown}}}"


def report(outcomes: list[Outcome], per_alert: dict[str, Score], total: Score) -> str:
    lines = [
        "",
        f"{'alert':34} {'fired':>5} {'TP':>4} {'FP':>4} {'want':>5} {'caught':>6} {'precision':>9} {'recall':>7}",
    ]
    for name, s in per_alert.items():
        lines.append(
            f"{name:34} {s.fired:5} {s.true_positives:4} {s.fired - s.true_positives:4} {s.expected:5} "
            f"{s.caught:6} {_pct(s.precision):>9} {_pct(s.recall):>7}"
        )
    lines.append(
        f"{'OVERALL':34} {total.fired:5} {total.true_positives:4} {total.fired - total.true_positives:4} "
        f"{total.expected:5} {total.caught:6} {_pct(total.precision):>9} {_pct(total.recall):>7}"
    )
    problems = [
        f"  {o.scenario.path.name}: false positive {_describe(a.alertname, a.labels)} at {a.first_seconds:.0f}s"
        for o in outcomes
        for a in o.false_positives
    ] + [
        f"  {o.scenario.path.name}: missed {_describe(e.alertname, e.labels)}"
        + (f" (by {e.by_seconds}s)" if e.by_seconds is not None else "")
        for o in outcomes
        for e in o.missed
    ]
    if problems:
        lines += ["", "Problems:", *problems]
    return "\n".join(lines)


def draw(panels: list[tuple[str, dict[str, Score], Score]], path: Path) -> None:
    """Precision and recall per alert as horizontal bars, one panel per corpus and kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(per_alert) for _, per_alert, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.3 * rows + 2), squeeze=False)
    for ax, (title, per_alert, total) in zip(axes[0], panels, strict=True):
        names = list(per_alert)
        positions = range(len(names))
        precision = [100 * (s.precision if s.precision is not None else 1) for s in per_alert.values()]
        recall = [100 * (s.recall if s.recall is not None else 1) for s in per_alert.values()]
        ax.barh([r + 0.2 for r in positions], precision, height=0.4, color="tab:blue", label="precision")
        ax.barh([r - 0.2 for r in positions], recall, height=0.4, color="tab:green", label="recall")
        ax.axvline(99, color="tab:red", linestyle="--", linewidth=1, label="99% target")
        ax.set_yticks(list(positions), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel("%")
        ax.set_title(f"{title}\nprecision {_pct(total.precision)}, recall {_pct(total.recall)}", fontsize=9)
        ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass
class CorpusResult:
    name: str
    firing: list[Outcome]
    notified: list[Outcome]


def _run_corpus(config: StackConfig, name: str, scenarios: list[Scenario], am: Alertmanager) -> CorpusResult:
    result = CorpusResult(name, [], [])
    for i, scenario in enumerate(scenarios, 1):
        started = time.monotonic()
        print(f"[{name} {i}/{len(scenarios)}] {scenario.path.name} ({scenario.duration}) ...", end=" ", flush=True)
        fired = judge(scenario, replay(config, scenario))
        notified = judge(
            scenario, notifications(am, firing_timeline(config, scenario), scenario.silences), notified=True
        )
        result.firing.append(fired)
        result.notified.append(notified)
        verdict = "ok" if not (notified.false_positives or notified.missed) else "MISMATCH"
        print(
            f"{verdict}: {len(fired.fired)} fired, {len(notified.fired)} notified, "
            f"{len(notified.caught)}/{len(scenario.expected)} wanted notified ({time.monotonic() - started:.1f}s)"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="prod")
    parser.add_argument(
        "--scenarios", type=Path, action="append", help=f"corpus directories (default {SCENARIOS_DIR}, {CORPUS_DIR})"
    )
    parser.add_argument("--min-precision", type=float, default=0.99)
    parser.add_argument("--min-recall", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("build/alert-quality"), help="report.txt and quality.png")
    args = parser.parse_args(argv)
    # Bad options are refused before the scenarios replay (minutes), not after.
    for option, ratio in (("--min-precision", args.min_precision), ("--min-recall", args.min_recall)):
        if not 0 <= ratio <= 1:  # nan fails both comparisons too
            print(f"error: {option} is a ratio between 0 and 1: write e.g. 0.99", file=sys.stderr)
            return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file: give a directory for report.txt and quality.png", file=sys.stderr)
        return 2
    directories: list[Path] = args.scenarios or [SCENARIOS_DIR, CORPUS_DIR]
    try:
        config = load_stack(args.stack)
        corpora = {d.name: load_scenarios(d) for d in directories}
    except (ConfigError, ScenarioError) as err:
        print(err, file=sys.stderr)
        return 2
    empty = [name for name, scenarios in corpora.items() if not scenarios]
    if empty:
        print(f"no scenarios in {', '.join(empty)}", file=sys.stderr)
        return 2
    try:
        with Alertmanager(config, build(config)) as am:
            results = [_run_corpus(config, name, scenarios, am) for name, scenarios in corpora.items()]
    except (ScenarioError, ReplayError) as err:
        print(f"\n{err}", file=sys.stderr)
        return 2
    texts, passed = [], True
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for result in results:
        for kind, outcomes in (("firing in Prometheus", result.firing), ("notified by Alertmanager", result.notified)):
            per_alert, total = scores(outcomes)
            texts.append(f"\n== {result.name}: {kind} ==" + report(outcomes, per_alert, total))
            summary.append((f"{result.name}, {kind}", per_alert, total))
            if kind.startswith("notified"):
                precision = 1.0 if total.precision is None else total.precision
                recall = 1.0 if total.recall is None else total.recall
                passed &= precision >= args.min_precision and recall >= args.min_recall
    text = "\n".join(texts)
    print(text)
    (args.out / "report.txt").write_text(text.lstrip() + "\n")
    draw(summary, args.out / "quality.png")
    print(f"\nwrote {args.out / 'report.txt'} and {args.out / 'quality.png'}\n")
    for title, _, total in summary:
        print(f"{title}: precision {_pct(total.precision)}, recall {_pct(total.recall)}")
    print(f"targets (notifications): precision >= {args.min_precision:.0%}, recall >= {args.min_recall:.0%}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
