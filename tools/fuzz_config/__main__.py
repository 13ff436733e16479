"""Fuzz the stack config: seeded mutations through the plan's loading path, validators on the rest.

    python -m tools.fuzz_config [--seed 18] [--count 2000] [--stack-file Pulumi.prod.yaml]

Prints clean errors / accepted / tracebacks, the rendered files the real validators checked and
refused, and string edits that changed a rendered file's structure. Exit codes: 0 nothing found,
1 a traceback, a refused file or a structure change (each listed), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components import config as stack_config
from tools.fuzz_config import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz_config", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--stack-file", type=Path, default=Path("Pulumi.prod.yaml"))
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        example, _ = stack_config.read_stack_file(args.stack_file)
        stack_config.validate(example, source=args.stack_file.name)
    except stack_config.ConfigError as err:
        print(f"error: the stack file to mutate must be valid: {err}", file=sys.stderr)
        return 2
    summary = run(example, args.seed, args.count)
    print("\n".join(summary.lines(args.seed)))
    for finding in [*summary.crashes, *summary.verdict.rejected, *summary.structure][:20]:
        print(f"\n{finding}")
    return 1 if summary.crashes or summary.verdict.rejected or summary.structure else 0


if __name__ == "__main__":
    sys.exit(main())
