"""`make alert-quality`: replay tests/scenarios/*.yml through the stack's rules, print precision
and recall per alert and overall, and fail below the targets (precision 99%, recall 100%)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from components.config import ConfigError
from tools.alert_quality import SCENARIOS_DIR, Outcome, ScenarioError, Score, judge, load_scenarios, replay, scores
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


def draw(per_alert: dict[str, Score], total: Score, path: Path) -> None:
    """Precision and recall per alert as horizontal bars (what fired vs what was wanted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_alert)
    rows = range(len(names))
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(names) + 1.6))
    precision = [100 * (s.precision if s.precision is not None else 1) for s in per_alert.values()]
    recall = [100 * (s.recall if s.recall is not None else 1) for s in per_alert.values()]
    ax.barh([r + 0.2 for r in rows], precision, height=0.4, color="tab:blue", label="precision")
    ax.barh([r - 0.2 for r in rows], recall, height=0.4, color="tab:green", label="recall")
    ax.axvline(99, color="tab:red", linestyle="--", linewidth=1, label="99% target")
    ax.set_yticks(list(rows), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("%")
    ax.set_title(f"Alert quality: precision {_pct(total.precision)}, recall {_pct(total.recall)}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS_DIR)
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
    try:
        config = load_stack(args.stack)
        scenarios = load_scenarios(args.scenarios)
    except (ConfigError, ScenarioError) as err:
        print(err, file=sys.stderr)
        return 2
    if not scenarios:
        print(f"no scenarios in {args.scenarios}", file=sys.stderr)
        return 2
    outcomes = []
    for i, scenario in enumerate(scenarios, 1):
        started = time.monotonic()
        print(f"[{i}/{len(scenarios)}] {scenario.path.name} ({scenario.duration}) ...", end=" ", flush=True)
        try:
            outcome = judge(scenario, replay(config, scenario))
        except ScenarioError as err:
            print(f"\n{err}", file=sys.stderr)
            return 2
        outcomes.append(outcome)
        verdict = "ok" if not (outcome.false_positives or outcome.missed) else "MISMATCH"
        print(
            f"{verdict}: {len(outcome.fired)} fired, {len(outcome.caught)}/{len(scenario.expected)} wanted caught "
            f"({time.monotonic() - started:.1f}s)"
        )
    per_alert, total = scores(outcomes)
    text = report(outcomes, per_alert, total)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.txt").write_text(text.lstrip() + "\n")
    draw(per_alert, total, args.out / "quality.png")
    print(f"\nwrote {args.out / 'report.txt'} and {args.out / 'quality.png'}")
    precision = 1.0 if total.precision is None else total.precision
    recall = 1.0 if total.recall is None else total.recall
    print(
        f"\n{len(scenarios)} scenarios: precision {_pct(total.precision)} (target >= {args.min_precision:.0%}), "
        f"recall {_pct(total.recall)} (target >= {args.min_recall:.0%})"
    )
    return 0 if precision >= args.min_precision and recall >= args.min_recall else 1


if __name__ == "__main__":
    sys.exit(main())
