"""The stacks of this repository, one per ``Pulumi.<stack>.yaml``: the workflows' matrix.

    python3 -m tools.stacks [--github-output]

Prints the names as a JSON array (``["prod", "staging"]``); with ``--github-output`` it also
appends ``stacks=<array>`` to ``$GITHUB_OUTPUT`` for ``fromJSON()`` in a job's matrix. Standard
library only: the workflows run it before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = re.compile(r"Pulumi\.([a-z][a-z0-9-]*)\.yaml")


def stacks(root: Path = ROOT) -> list[str]:
    """Stack names of every stack file; a file whose name is no valid stack name is an error."""
    names = []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        found = STACK_FILE.fullmatch(path.name)
        if found is None:
            raise ValueError(f"{path.name}: name stack files Pulumi.<stack>.yaml with [a-z][a-z0-9-]* as <stack>")
        names.append(found.group(1))
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.stacks", description=__doc__.splitlines()[0])
    parser.add_argument("--github-output", action="store_true", help="also append stacks=... to $GITHUB_OUTPUT")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    try:
        found = stacks(args.root)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not found:
        print(f"error: no Pulumi.<stack>.yaml in {args.root}", file=sys.stderr)
        return 2
    line = json.dumps(found)
    print(line)
    if args.github_output:
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
            out.write(f"stacks={line}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
