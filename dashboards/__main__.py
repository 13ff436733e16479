"""Regenerate dashboards/*.json from the code for the example stack: ``python -m dashboards``."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from components import config as stack_config
from dashboards import DIRECTORY, render

EXAMPLE_STACK = DIRECTORY.parent / "Pulumi.prod.yaml"


def example_config(path: Path = EXAMPLE_STACK) -> stack_config.StackConfig:
    values = yaml.safe_load(path.read_text())["config"]
    return stack_config.validate({key.split(":", 1)[1]: value for key, value in values.items()}, source=path.name)


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
