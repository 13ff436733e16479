"""Write rules/<area>.yml for every generated area from Pulumi.<stack>.yaml, then check them;
write rules/tests/incidents_test.yml (tools/rules/cases.py) from the same stack.

The committed files are the example stack's rules: reviewers read them, promtool tests run on
them, and a test fails when they drift from what the renderer produces.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from components import config as stack_config
from components.inventory import build
from components.render import rules
from tools.rules import cases, load_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="prod")
    args = parser.parse_args(argv)
    try:
        config = load_stack(args.stack)
    except stack_config.ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    inventory = build(config)
    written = []
    for area, render in rules.GENERATED.items():
        path = rules.RULES_DIR / f"{area}.yml"
        path.write_text(render(config, inventory))
        written.append(str(path))
    print(f"wrote {len(written)} rule files from Pulumi.{args.stack}.yaml")
    checked = subprocess.run(["promtool", "check", "rules", *written], check=False).returncode
    tests = rules.RULES_DIR / "tests" / cases.FILE_NAME
    tests.write_text(cases.render(config, inventory))
    print(f"wrote {tests}")
    return checked


if __name__ == "__main__":
    sys.exit(main())
