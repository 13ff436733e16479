"""Run an on-call drill: send a synthetic critical alert, wait for its acknowledgement, record it.

    python -m tools.oncall_drill --alertmanager http://127.0.0.1:9093 \\
        --textfile-dir /var/lib/prometheus/node-exporter [--ack-timeout 30m]

Exit codes: 0 acknowledged, 1 not acknowledged in time, 2 Alertmanager unreachable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.oncall_drill import record, run
from tools.silences.api import AlertmanagerError, add_connection_arguments, from_arguments
from tools.silences.policy import PolicyError, parse_duration

RUNBOOK = "docs/runbooks/OnCallDrillOverdue.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oncall_drill", description=__doc__.split("\n\n")[0])
    add_connection_arguments(parser)
    parser.add_argument("--textfile-dir", type=Path, required=True)
    parser.add_argument("--ack-timeout", default="30m", help="how long on-call has to acknowledge")
    parser.add_argument("--runbook-url", default=RUNBOOK)
    args = parser.parse_args(argv)
    try:
        timeout = parse_duration(args.ack_timeout)
    except PolicyError as err:
        parser.error(f"--ack-timeout: {err}")
    try:
        result = run(from_arguments(args), timeout, args.runbook_url, progress=lambda s: print(s, flush=True))
    except AlertmanagerError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"wrote {record(result, args.textfile_dir)}")
    return 0 if result.acked else 1


if __name__ == "__main__":
    sys.exit(main())
