"""`make lab`: run the monitoring plane locally and print every notification until Ctrl-C.

python -m tools.lab [--stack prod] [--speedup 1]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from components import config as stack_config
from tools.lab import Lab, LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="prod", help="stack whose config to render (Pulumi.<stack>.yaml)")
    parser.add_argument("--speedup", type=float, default=1.0, help="divide every alerting timing by this")
    parser.add_argument("--workdir", type=Path, help="keep configs, data and logs here (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    try:
        config = stack_config.load_file(Path(f"Pulumi.{args.stack}.yaml"))
    except (stack_config.ConfigError, OSError) as err:
        print(err, file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        lab = Lab(config, speedup=args.speedup, workdir=args.workdir, echo=lambda line: print(line, flush=True))
        print(lab.banner(), flush=True)
        print("starting node exporter, blackbox exporter, Alertmanager and Prometheus ...", flush=True)
        print("notifications (time -> receiver, alerts):", flush=True)
        lab.start()
    except LabError as err:
        print(f"lab: {err}", file=sys.stderr)
        return 1
    try:
        print("ready: Prometheus has evaluated the rules and scraped every target", flush=True)
        stop.wait()
    finally:
        print("\nstopping ...", flush=True)
        lab.stop()
    print("lab stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
