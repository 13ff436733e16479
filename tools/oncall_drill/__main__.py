"""Run an on-call drill: send a synthetic critical alert, wait for its acknowledgement, record it.

    python -m tools.oncall_drill --alertmanager http://127.0.0.1:9093 \\
        --textfile-dir /var/lib/prometheus/node-exporter [--ack-timeout 30m]

Exit codes: 0 acknowledged, 1 not acknowledged in time or Alertmanager unreachable, 2 bad input
(checked before the alert is sent: a drill that cannot record its result must not page anyone).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tools.oncall_drill import record, run
from tools.silences.api import AlertmanagerError, add_connection_arguments, from_arguments
from tools.silences.policy import BadInputError, parse_duration

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
        _writable_dir(args.textfile_dir)
        am = from_arguments(args)
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = run(am, timeout, args.runbook_url, progress=lambda s: print(s, flush=True))
    except AlertmanagerError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"wrote {record(result, args.textfile_dir)}")
    return 0 if result.acked else 1


def _writable_dir(path: Path) -> None:
    """The textfile directory must take the result, or the drill would page for nothing."""
    if path.exists() and not path.is_dir():
        raise BadInputError(f"--textfile-dir {path} is a file: give node_exporter's textfile directory")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(f"--textfile-dir {path}: {existing} is not writable by this user")


if __name__ == "__main__":
    sys.exit(main())
