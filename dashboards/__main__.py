"""Regenerate dashboards/*.json from the code for the example stack: ``python -m dashboards``."""

from __future__ import annotations

import sys
from pathlib import Path

from components import config as stack_config
from dashboards import DIRECTORY, render

EXAMPLE_STACK = DIRECTORY.parent / "Pulumi.prod.yaml"


def example_config(path: Path = EXAMPLE_STACK) -> stack_config.StackConfig:
    return stack_config.load_file(path)


def main() -> int:
    boards = render(example_config())
    wanted = {board.file for board in boards}
    for stale in sorted(DIRECTORY.glob("*.json")):
        if stale.name not in wanted:
            stale.unlink()
            print(f"removed {stale.name}")
    for board in boards:
        (DIRECTORY / board.file).write_text(board.json)
        print(f"wrote dashboards/{board.file} ({board.folder}, uid {board.uid})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
