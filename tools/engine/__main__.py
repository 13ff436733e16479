"""`make engine`: build or reuse the Pulumi CLI, report every plugin the proxy serves or refuses."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict

from tools import engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.engine", description=__doc__)
    parser.add_argument("--no-probe", action="store_true", help="skip asking the proxy for the plugins")
    args = parser.parse_args(argv)
    if shutil.which("go") is None:
        print("engine: `go` is not on PATH (Go 1.26 builds the CLI from the module proxy)", file=sys.stderr)
        return 1
    started = time.monotonic()
    cli = engine.cli_path()
    if cli.exists():
        print(f"engine: reusing {cli}", flush=True)
    else:
        print(
            f"engine: building the Pulumi CLI {engine.CLI_VERSION} into {cli} (cold: about 5 min on 2 cores)",
            flush=True,
        )
        engine.build_cli(cli)
    version = subprocess.run([str(cli), "version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"engine: pulumi {version} ready in {time.monotonic() - started:.1f} s", flush=True)
    if args.no_probe:
        return 0
    answers = [engine.probe(plugin, *where) for plugin, where in engine.PLUGIN_MODULES.items()]
    for a in answers:
        print(f"engine: {a.plugin:<26} {a.module}@{a.version}: {a.answer}")
    (cli.parent.parent / "plugins.json").write_text(json.dumps([asdict(a) for a in answers], indent=2) + "\n")
    missing = [a.plugin for a in answers if not a.served]
    if missing:
        print(
            f"engine: not buildable here ({len(missing)}): {', '.join(missing)}; programs run on the real CLI "
            "through the Automation API's inline language server (tests/engine), README 'Real engine'"
        )
    print(f"engine: done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
