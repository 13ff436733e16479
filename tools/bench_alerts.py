"""`make bench-alerts`: time from a target going down to its notification, at production timings.

Real Prometheus and Alertmanager from the lab with the stack's rendered configs and unscaled
timings (scrape and evaluation 15s, TargetDown `for: 3m30s`, critical group_wait 15s). Each trial is
its own small exporter (a critical-tier target, so its own alert group) stopped at a random moment
of the scrape cycle; the trials run concurrently. Prints p50, p95 and max against the 5-minute
bound and the term-by-term worst case for this config, and draws build/bench/alerts.png.
This is a benchmark, not a test: it prints figures and exits 0 unless the pipeline broke.

    python -m tools.bench_alerts [--stack prod] [--trials 8] [--out build/bench]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from components import config as stack_config
from components.config import StackConfig, duration_seconds
from components.render.rules.availability import behind_host_seconds
from tools.lab import Lab, LabError, free_port

# issue 13: at most 5 minutes from target down to notification (a 2-minute restart pages nobody).
BOUND_SECONDS = 300


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"# TYPE bench_target_info gauge\nbench_target_info 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class Target:
    name: str
    port: int
    server: ThreadingHTTPServer
    stopped_at: float | None = None
    notified_at: float | None = None

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.stopped_at = time.time()


def start_target(name: str) -> Target:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Metrics)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return Target(name, port, server)


def worst_case_terms(config: StackConfig) -> list[tuple[str, int]]:
    """The derivation in docs/alerting.md, for this config (a refused connection fails at once)."""
    m, a = config.monitoring, config.alerting
    return [
        ("next scrape sees it down (scrape_interval)", duration_seconds(m.scrape_interval)),
        ("a hung target fails only at scrape_timeout", duration_seconds(m.scrape_timeout)),
        ("next rule evaluation marks it pending (evaluation_interval)", duration_seconds(m.evaluation_interval)),
        # The bench's targets are not node exporters: they hold one scrape and one evaluation longer.
        ("pending for `for` (TargetDown, a non-node target)", behind_host_seconds(config)),
        ("Alertmanager group_wait (critical)", duration_seconds(a.routing.critical.group_wait)),
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


def draw(latencies: list[float], worst: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.scatter(sorted(latencies), range(1, len(latencies) + 1), color="tab:blue", label="trials")
    ax.axvline(BOUND_SECONDS, color="tab:red", label=f"bound {BOUND_SECONDS}s")
    ax.axvline(worst, color="tab:orange", linestyle="--", label=f"derived worst case {worst}s")
    ax.set_xlabel("target down -> notification (s)")
    ax.set_ylabel("trial (sorted)")
    ax.set_xlim(0, BOUND_SECONDS * 1.1)
    ax.legend(loc="upper left")
    ax.set_title("TargetDown detection and delivery at production timings")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-alerts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    config = stack_config.load_file(Path(f"Pulumi.{args.stack}.yaml"))
    rng = random.Random(args.seed)  # noqa: S311 (when to stop targets, not a secret)
    targets = [start_target(f"bench-{i}") for i in range(args.trials)]
    job = {
        "job_name": "bench",
        "static_configs": [
            {"targets": [t.instance], "labels": {"asset": t.name, "service": "bench", "tier": "critical"}}
            for t in targets
        ],
    }
    terms = worst_case_terms(config)
    refused_worst = sum(s for name, s in terms if "hung" not in name)
    print(f"starting Prometheus + Alertmanager at production timings with {args.trials} bench targets ...", flush=True)
    try:
        lab = Lab(config, speedup=1, extra_scrape_configs=(job,))
        lab.start()
    except LabError as err:
        print(f"bench-alerts: {err}", file=sys.stderr)
        return 1
    try:
        scrape = duration_seconds(config.monitoring.scrape_interval)
        # Spread the stops over two scrape cycles so they land at every phase of scrape and evaluation.
        offsets = sorted(rng.uniform(0, 2 * scrape) for _ in targets)
        begin = time.time()
        for target, offset in zip(targets, offsets, strict=True):
            time.sleep(max(0.0, begin + offset - time.time()))
            target.stop()
        print(f"stopped {len(targets)} targets over {offsets[-1]:.0f}s; waiting for their notifications", flush=True)
        deadline = time.monotonic() + BOUND_SECONDS * 2
        while time.monotonic() < deadline and any(t.notified_at is None for t in targets):
            for n in lab.sink.notifications("TargetDown"):
                for alert in n.alerts:
                    for t in targets:
                        if alert["labels"].get("instance") == t.instance and t.notified_at is None:
                            t.notified_at = n.received_at
            waiting = sum(1 for t in targets if t.notified_at is None)
            print(f"  {waiting} of {len(targets)} still waiting ({time.time() - begin:.0f}s)", flush=True)
            time.sleep(5)
    finally:
        lab.stop()

    latencies = [t.notified_at - t.stopped_at for t in targets if t.notified_at and t.stopped_at]
    print("\ntrial  latency")
    for t in targets:
        shown = f"{t.notified_at - t.stopped_at:6.1f}s" if t.notified_at and t.stopped_at else "  never"
        print(f"{t.name:<8} {shown}")
    print("\nworst case for this config, term by term:")
    for name, seconds in terms:
        print(f"  {seconds:>4}s  {name}")
    print(f"  = {refused_worst}s for a refused connection, {sum(s for _, s in terms)}s for a hung one")
    if not latencies:
        print("no notification arrived: the pipeline is broken", file=sys.stderr)
        return 1
    p50, p95, worst = statistics.median(latencies), percentile(latencies, 0.95), max(latencies)
    print(
        f"\nTargetDown, {len(latencies)}/{len(targets)} trials: p50 {p50:.1f}s  p95 {p95:.1f}s  max {worst:.1f}s  "
        f"(bound {BOUND_SECONDS}s: {'within' if worst <= BOUND_SECONDS else 'EXCEEDED'})"
    )
    picture = args.out / "alerts.png"
    draw(latencies, refused_worst, picture)
    print(f"picture: {picture}")
    return 0 if len(latencies) == len(targets) else 1


if __name__ == "__main__":
    sys.exit(main())
