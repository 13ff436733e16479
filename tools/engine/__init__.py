"""The real Pulumi engine, built from Go modules and cached outside the repository.

``make engine`` (``python -m tools.engine``) builds the Pulumi CLI from ``engine/cli`` (a wrapper
module that repeats pkg/v3's replace directives) into ``$OBSSTACK_ENGINE_DIR`` (default
``~/.cache/obsstack-engine``), keyed by version, or reuses it. It then asks the Go module proxy
for each provider plugin and the Python language host at the version the pinned Python SDKs
need, and reports exactly what the proxy answered: nothing is faked in place of what it refuses.

Versions: the Python SDK is pulumi 3.272.0, whose pkg/v3 module the proxy does not serve; 3.274.0
is the nearest served release (a newer CLI runs older SDKs: the engine protocol is versioned).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

ROOT = Path(__file__).resolve().parents[2]
CLI_MODULE_DIR = ROOT / "engine" / "cli"
CLI_PACKAGE = "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
CLI_VERSION = "v3.274.0"
VERSION_LDFLAG = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"

# What a real `pulumi preview/up` of this program needs beyond the CLI, at the versions that
# match requirements.txt. Module paths are the repositories' own go.mod names.
PLUGIN_MODULES = {
    "pulumi-language-python": ("github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3", "v3.274.0"),
    "pulumi-resource-command": ("github.com/pulumi/pulumi-command/provider", "v1.2.1"),
    "pulumi-resource-tls": ("github.com/pulumi/pulumi-tls/provider/v5", "v5.6.2"),
    "pulumi-resource-random": ("github.com/pulumi/pulumi-random/provider/v4", "v4.21.4"),
    "pulumi-resource-proxmoxve": ("github.com/muhlba91/pulumi-proxmoxve/provider", "v8.6.0"),
    "pulumi-resource-grafana": ("github.com/pulumiverse/pulumi-grafana/provider/v2", "v2.44.0"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("OBSSTACK_ENGINE_DIR", Path.home() / ".cache" / "obsstack-engine"))


def cli_path() -> Path:
    return cache_dir() / f"pulumi-{CLI_VERSION}" / "bin" / "pulumi"


@dataclass(frozen=True)
class ModuleAnswer:
    plugin: str
    module: str
    version: str
    served: bool
    answer: str


def probe(plugin: str, module: str, version: str) -> ModuleAnswer:
    """Ask the module proxy for ``module@version`` the way ``go`` does; keep its own words."""
    proxy_only = {**os.environ, "GOPROXY": os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0]}
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=CLI_MODULE_DIR,
        env=proxy_only,  # the registry's answer, not a failed git clone from a host we cannot reach
        timeout=120,
    )
    try:
        info = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    error = info.get("Error") or done.stderr.strip()
    served = done.returncode == 0 and not error
    return ModuleAnswer(
        plugin,
        module,
        version,
        served,
        "served" if served else " ".join(line.strip() for line in error.splitlines()[-2:]),
    )


def build_cli(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    subprocess.run(
        ["go", "build", "-trimpath", "-ldflags", f"-X {VERSION_LDFLAG}={CLI_VERSION}", "-o", str(partial), CLI_PACKAGE],
        cwd=CLI_MODULE_DIR,
        check=True,
    )
    partial.rename(target)


def inline_stack(
    program: Callable[[], None], workdir: Path, stack: str = "test", project: str = "obsstack-engine-test"
) -> auto.Stack:
    """A stack of ``program`` on the real CLI: local file backend, passphrase secrets, no cloud.

    The Automation API serves the program from this process (``--client``), so the CLI needs no
    pulumi-language-python binary (which the module proxy does not serve).
    """
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    env = {
        "PULUMI_BACKEND_URL": state.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "obsstack-test-passphrase",  # a test stack's, not a secret
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    options = auto.LocalWorkspaceOptions(
        pulumi_home=str(workdir / "home"),
        env_vars=env,
        secrets_provider="passphrase",
        pulumi_command=auto.PulumiCommand(root=str(cli_path().parent.parent), version=None),
    )
    return auto.create_or_select_stack(stack_name=stack, project_name=project, program=program, opts=options)
