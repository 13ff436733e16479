"""Benchmark the offline plan: wall time and peak memory for synthetic inventories.

    python -m tools.bench_plan [--sizes 10 100 500]

Each size runs in its own process (so peak RSS is that run's alone): it builds an inventory of N
assets (PVE nodes, PBS, guests with probes and backups, a few drill targets) on top of the example
stack, then validates the config and plans it exactly as `make plan` does. Not a timed test:
figures go to stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from components import config as stack_config

ROOT = Path(__file__).resolve().parents[1]


def synthetic_sections(size: int) -> dict[str, Any]:
    """The example stack with its PVE nodes and PBS host and ``size`` assets in all (also the
    stack `make bench-dashboards` synthesises its series for)."""
    sections, _ = stack_config.read_stack_file(ROOT / "Pulumi.prod.yaml")
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


def run_one(size: int) -> dict[str, float]:
    from components import config as stack_config
    from components import inventory as stack_inventory
    from components.render import host_files
    from tools.plan import engine  # the Pulumi SDK: only where a plan runs

    sections = synthetic_sections(size)
    start = time.perf_counter()
    config = stack_config.validate(sections)
    secrets = {key: f"bench-{key}" for key in config.secret_key_names()}
    result = engine.run("bench", sections, secrets)
    files = host_files(config, stack_inventory.build(config))
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "assets": size,
        "resources": len(result.resources),
        "files": len(files),
        "wall_s": wall,
        "peak_mib": peak_mib,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one)))
        return 0
    print(f"{'assets':>7} {'resources':>10} {'files':>6} {'wall s':>8} {'peak MiB':>9} {'ms/asset':>9}")
    rows = []
    for size in args.sizes:
        print(f"  planning {size} assets ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, "-m", "tools.bench_plan", "--one", str(size)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{row['assets']:>7} {row['resources']:>10} {row['files']:>6} {row['wall_s']:>8.2f} "
            f"{row['peak_mib']:>9.0f} {1000 * row['wall_s'] / row['assets']:>9.2f}"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        growth = (last["wall_s"] / first["wall_s"]) / (last["assets"] / first["assets"])
        print(f"growth factor (time ratio / size ratio, 1.0 = linear, <1 = fixed cost dominates): {growth:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
