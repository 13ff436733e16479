"""Monthly platform report from Prometheus: does the platform keep its promises?

    python -m tools.report [--prometheus URL] [--from TIME] [--to TIME] [--out DIR] [--step SECONDS]
                           [--user NAME --password-file FILE] [--ca-file PEM]
                           [--rpo 24h] [--rto 2h] [--mtta 10m] [--coverage-target 0.95]

TIME is ISO 8601 (2026-10-01, 2026-10-01T00:00:00Z), unix seconds, `now` or `now-30d`. The
password comes from --password-file or the OBS_PROMETHEUS_PASSWORD environment variable, never
from the command line.
Writes DIR/report.md, DIR/report.html, DIR/report.json and PNG plots. Exit codes: 0 written,
2 bad arguments, 1 Prometheus unreachable or refusing a query.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from components.config import duration_seconds
from tools.report import render
from tools.report.figures import SECTIONS, Budgets, Collector, RangeSource, Report, Window, default_step
from tools.report.prometheus import Prometheus, PrometheusError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
PASSWORD_ENV = "OBS_PROMETHEUS_PASSWORD"
# Series kept out of report.json: the plots have them, the JSON is for the figures.
POINT_FIELDS = {"points", "ages", "used"}


def parse_time(text: str, now: float) -> float:
    if text == "now":
        return now
    if text.startswith("now-"):
        return now - duration_seconds(text[4:])
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise ValueError(f"'{text}' is not a time: write a finite Unix time, a date or now-30d")
        return number
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"'{text}' is not a time: write 2026-10-01, 2026-10-01T00:00:00Z, 1790000000 or now-30d"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def _time(option: str, text: str, now: float) -> float:
    try:
        return parse_time(text, now)
    except ValueError as err:
        raise ValueError(f"{option}: {err}") from None


def credentials(user: str | None, password_file: Path | None) -> tuple[str, str] | None:
    if user is None:
        if password_file is not None:
            raise ValueError("--password-file needs --user NAME")
        return None
    if password_file is not None:
        try:
            return user, password_file.read_text().strip()
        except OSError as err:
            raise ValueError(f"cannot read --password-file {password_file}: {err.strerror}") from None
    if PASSWORD_ENV in os.environ:
        return user, os.environ[PASSWORD_ENV]
    raise ValueError(f"--user needs a password: --password-file FILE or the {PASSWORD_ENV} environment variable")


def figures_json(report: Report) -> dict[str, Any]:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in POINT_FIELDS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    data = strip(dataclasses.asdict(report))
    data["derived"] = {
        "coverage": {
            "mean": report.coverage.mean,
            "minimum": report.coverage.minimum,
            "time_at_target": report.coverage.time_at_target,
        },
        "backups": {
            g.vmid: {"success_rate": g.success_rate, "within_rpo": g.within(report.budgets.rpo_seconds)}
            for g in report.backups
        },
        "datastores": {d.name: {"usage": d.usage, "days_to_full": d.days_to_full} for d in report.datastores},
    }
    return data


def build(prometheus: RangeSource, window: Window, budgets: Budgets, log: Any = sys.stderr) -> Report:
    collector = Collector(prometheus, window, budgets)
    results: dict[str, Any] = {}
    for i, (field, (title, compute)) in enumerate(SECTIONS.items(), start=1):
        began = time.monotonic()
        print(f"[{i}/{len(SECTIONS)}] {title} ...", end="", file=log, flush=True)
        results[field] = compute(collector)
        print(f" done ({time.monotonic() - began:.2f} s)", file=log, flush=True)
    return Report(prometheus=prometheus.url, window=window, budgets=budgets, **results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="base URL of Prometheus")
    parser.add_argument("--from", dest="start", default="now-30d", help="window start (default now-30d)")
    parser.add_argument("--to", dest="end", default="now", help="window end (default now)")
    parser.add_argument("--out", type=Path, default=Path("build/report"))
    parser.add_argument("--step", type=float, help="seconds between points (default: 300, coarser for long windows)")
    parser.add_argument("--user", help="basic-auth user of Prometheus's web config")
    parser.add_argument("--password-file", type=Path, help=f"file holding the password (or ${PASSWORD_ENV})")
    parser.add_argument("--ca-file", type=Path, help="CA certificate that signed Prometheus's TLS certificate")
    parser.add_argument("--rpo", default="24h", help="backup RPO budget")
    parser.add_argument("--rto", default="2h", help="restore RTO budget")
    parser.add_argument("--mtta", default="10m", help="mean time to acknowledge target")
    parser.add_argument("--coverage-target", type=float, default=0.95)
    args = parser.parse_args(argv)
    now = time.time()
    try:
        start, end = _time("--from", args.start, now), _time("--to", args.end, now)
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} is a file: give a directory for the report")
        budgets = Budgets(
            coverage_target=args.coverage_target,
            rpo_seconds=duration_seconds(args.rpo),
            rto_seconds=duration_seconds(args.rto),
            mtta_seconds=duration_seconds(args.mtta),
        )
        auth = credentials(args.user, args.password_file)
        if args.ca_file is not None and not args.ca_file.is_file():
            raise ValueError(f"--ca-file {args.ca_file} does not exist")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if end <= start:
        print("error: --from must be before --to", file=sys.stderr)
        return EXIT_USAGE
    if args.step is not None and not (math.isfinite(args.step) and args.step > 0):
        print("error: --step is seconds between points: write a positive number, e.g. 300", file=sys.stderr)
        return EXIT_USAGE
    if not 0 < args.coverage_target <= 1:
        print("error: --coverage-target is a ratio: write e.g. 0.95", file=sys.stderr)
        return EXIT_USAGE
    window = Window(start, end, args.step or default_step(start, end))
    print(f"report on {render.when(start)} .. {render.when(end)} from {args.prometheus}", file=sys.stderr)
    try:
        report = build(Prometheus(args.prometheus, auth=auth, ca_file=args.ca_file), window, budgets)
    except PrometheusError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return EXIT_ERROR
    written = render.write(report, args.out)
    (args.out / "report.json").write_text(json.dumps(figures_json(report), indent=2, sort_keys=True) + "\n")
    print(f"report written to {args.out}/: " + ", ".join(p.name for p in [*written, args.out / "report.json"]))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
