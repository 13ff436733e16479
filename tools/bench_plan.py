"""Benchmark `make plan`: wall and CPU time of the plan CLI for the example and synthetic stacks.

    python -m tools.bench_plan [--sizes 10 100 500] [--runs 3] [--baseline DIR]

Each measurement is one run of ``python -m tools.plan --stack-file F --out DIR --quiet``, exactly
what `make plan` runs, in its own process (imports included: they are part of the wait), after
one warm-up run (page cache, bytecode, the prune chart cache). The synthetic stacks have N assets
(the example's PVE nodes and PBS host, then guests with probes, backups and a few drill targets).
With ``--baseline DIR`` (another checkout, e.g. ``git worktree add /tmp/base main`` or
``git archive main | tar -x -C /tmp/base``) the same stack files are planned by that code too,
runs interleaved, so the before/after ratio comes from one run on the same loaded machine.

Wall time on a shared machine swings with the load; CPU time (user + system) much less, so both
are printed. Not a timed test: figures go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from components import config as stack_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "Pulumi.prod.yaml"


def synthetic_sections(size: int) -> dict[str, Any]:
    """The example stack with its PVE nodes and PBS host and ``size`` assets in all (also the
    stack `make bench-dashboards` synthesises its series for)."""
    sections, _ = stack_config.read_stack_file(EXAMPLE)
    fixed = [a for a in sections["inventory"]["assets"] if a["kind"] in ("pve_node", "pbs_host")]
    guests = []
    for i in range(size - len(fixed)):
        vmid = 1000 + i
        guest: dict[str, Any] = {
            "name": f"guest-{i:04d}",
            "kind": "vm" if i % 3 else "lxc",
            "vmid": vmid,
            "node": f"pve{i % 3 + 1}",
            "address": f"10.{1 + i // 65000}.{(i // 250) % 250}.{i % 250 + 2}",
            "service": f"svc-{i % 25}",
            "tier": ("critical", "important", "best-effort")[i % 3],
            "probes": [{"module": "http_2xx", "target": f"https://guest-{i:04d}.lab.example.net/health"}],
        }
        if guest["kind"] == "vm" and i % 20 == 1:
            guest["drill"] = {"canary_paths": ["/etc"]}
        guests.append(guest)
    sections["inventory"]["assets"] = fixed + guests
    sections["alerting"]["routing"]["warning"]["by_service"] = {}
    return sections


def write_stack_file(path: Path, sections: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"config": {f"obsstack:{key}": value for key, value in sections.items()}}))
    return path


def plan_once(code: Path, stack_file: Path, out: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MiB) of one `make plan` run of ``code`` (a checkout) over ``stack_file``."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.plan", "--stack-file", str(stack_file), "--out", str(out), "--quiet"],
        cwd=code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"plan of {stack_file} by {code} failed ({proc.returncode}):\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _resources(out: Path) -> int:
    return len(json.loads((out / "plan.json").read_text())["resources"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--runs", type=int, default=3, help="measured runs per stack and checkout (after a warm-up)")
    parser.add_argument("--baseline", type=Path, help="another checkout to plan the same stacks with")
    args = parser.parse_args(argv)
    codes = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    print(
        f"{'stack':<16} {'code':<9} {'resources':>9} {'wall s':>7} {'CPU s':>6} {'peak MiB':>8}  median of {args.runs}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        work = Path(tmp)
        stacks = {"example": EXAMPLE}
        for size in args.sizes:
            stacks[f"{size} assets"] = write_stack_file(work / f"Pulumi.bench{size}.yaml", synthetic_sections(size))
        for label, stack_file in stacks.items():
            print(f"  planning {label} ...", file=sys.stderr, flush=True)
            runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in codes}
            for name, code in codes.items():  # warm-up
                plan_once(code, stack_file, work / f"out-{name}")
            for _ in range(args.runs):
                for name, code in codes.items():
                    runs[name].append(plan_once(code, stack_file, work / f"out-{name}"))
            for name in codes:
                wall, cpu, peak = (statistics.median(column) for column in zip(*runs[name], strict=True))
                resources = _resources(work / f"out-{name}")
                print(f"{label:<16} {name:<9} {resources:>9} {wall:>7.2f} {cpu:>6.2f} {peak:>8.0f}")
            if args.baseline:
                ratios = [
                    statistics.median(r[i] for r in runs["baseline"]) / statistics.median(r[i] for r in runs["this"])
                    for i in (0, 1)
                ]
                print(f"{label:<16} {'speed-up':<9} {'':>9} {ratios[0]:>6.1f}x {ratios[1]:>5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
