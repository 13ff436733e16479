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
are printed. Last, the Pulumi SDK's own cost per resource: a bare program declaring
``--sdk-floor`` commands (one connection, a 4 kB script, a trigger Output each, like the agents'
steps) under the same mock engine, so the plan's figures split into what the SDK costs for that
many resources and what the project adds. Not a timed test: figures go to stdout.
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


_BARE_PROGRAM = """
import os

import pulumi
from pulumi_command import remote

connection = remote.ConnectionArgs(host="10.0.0.1", user="root", private_key=pulumi.Output.secret("key"))
identity = pulumi.Output.from_input("host-identity")
for i in range(int(os.environ["OBSSTACK_BARE_COMMANDS"])):
    args = remote.CommandArgs(connection=connection, create="true " + "x" * 4096, triggers=[identity])
    remote.Command(f"step-{i}", args)
"""


def sdk_cost_per_resource(count: int, work: Path) -> float:
    """CPU seconds the SDK spends per resource under the mock engine (``count`` bare commands)."""
    program = work / "bare_program.py"
    program.write_text(_BARE_PROGRAM)
    script = (
        "import sys, time; from pathlib import Path; from tools.plan import engine; began = time.process_time(); "
        "result = engine.run('bench', {}, {}, program=Path(sys.argv[1])); "
        "print((time.process_time() - began) / len(result.resources))"
    )
    env = {**os.environ, "OBSSTACK_BARE_COMMANDS": str(count)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(program)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def _resources(out: Path) -> int:
    return len(json.loads((out / "plan.json").read_text())["resources"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--runs", type=int, default=3, help="measured runs per stack and checkout (after a warm-up)")
    parser.add_argument("--baseline", type=Path, help="another checkout to plan the same stacks with")
    parser.add_argument("--sdk-floor", type=int, default=2000, help="bare commands to time the SDK with (0: skip)")
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
        planned: dict[str, int] = {}
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
                resources = planned[label] = _resources(work / f"out-{name}")
                print(f"{label:<16} {name:<9} {resources:>9} {wall:>7.2f} {cpu:>6.2f} {peak:>8.0f}")
            if args.baseline:
                ratios = [
                    statistics.median(r[i] for r in runs["baseline"]) / statistics.median(r[i] for r in runs["this"])
                    for i in (0, 1)
                ]
                print(f"{label:<16} {'speed-up':<9} {'':>9} {ratios[0]:>6.1f}x {ratios[1]:>5.1f}x")
        if args.sdk_floor:
            per = sdk_cost_per_resource(args.sdk_floor, work)
            print(f"Pulumi SDK alone: {per * 1000:.1f} ms CPU per resource ({args.sdk_floor} bare commands); for")
            for label, resources in planned.items():
                print(f"{label:<16} {'SDK only':<9} {resources:>9} {'':>7} {per * resources:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
