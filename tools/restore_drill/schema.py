"""The `restoreDrill` stack output, validated: the one input of the drill tool.

The tool runs where only its own package is installed (the monitoring host's venv), so this
schema does not import ``components``; tests keep it in step with ``components/outputs.py``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

OUTPUT_NAME = "restoreDrill"
MASKED = "[secret]"


class InputError(Exception):
    """Unusable input (outputs file, schema, credentials): one message naming the field and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Pve(_Model):
    endpoint: str = Field(pattern=r"^https://[^/\s]+/?$", description="https://host:8006/")
    verify_tls: bool = True
    ca_file: str | None = None
    nodes: tuple[str, ...] = Field(min_length=1)

    @property
    def host_port(self) -> str:
        return self.endpoint.removeprefix("https://").rstrip("/")


class NodeSsh(_Model):
    address: str
    user: str = "root"


class Lxc(_Model):
    """How the drill reaches `pct exec` on a node: the PVE API has no exec for containers
    (pve-container src/PVE/CLI/pct.pm: `exec` is a CLI command running lxc-attach locally)."""

    nodes: dict[str, NodeSsh] = Field(default_factory=dict)
    ssh_key_file: str | None = None
    forced_command: str | None = Field(default=None, description="the key's authorized_keys command= on the nodes")
    ssh_command: tuple[str, ...] = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10")


class Scratch(_Model):
    storage: str
    vmid_range: tuple[int, int]
    pool: str | None = None
    node: str | None = Field(default=None, description="restore on this node instead of the guest's")

    @model_validator(mode="after")
    def _ordered(self) -> Scratch:
        low, high = self.vmid_range
        if not 100 <= low <= high:
            raise ValueError(f"vmidRange {list(self.vmid_range)} must be [low, high] with 100 <= low <= high")
        return self


class Isolation(_Model):
    mode: Literal["link_down", "bridge"]
    bridge: str | None = None

    @model_validator(mode="after")
    def _bridge_given(self) -> Isolation:
        if self.mode == "bridge" and not self.bridge:
            raise ValueError("mode 'bridge' needs `bridge`: a bridge without uplink")
        return self


class Timeouts(_Model):
    restore_seconds: float = Field(gt=0)
    agent_seconds: float = Field(gt=0)
    verify_seconds: float = Field(gt=0)
    start_seconds: float = Field(default=300, gt=0)
    cleanup_seconds: float = Field(default=900, gt=0)
    request_seconds: float = Field(default=30, gt=0)
    poll_seconds: float = Field(default=2, gt=0)


class Schedule(_Model):
    every_seconds: int = Field(gt=0)
    check_at: str = "10:00"
    canary_on_calendar: str = ""


class Canary(_Model):
    file: str = "/var/lib/obs-canary/canary.json"
    manifest: str = "/var/lib/obs-canary/manifest.sha256"


class Credentials(_Model):
    token_id: str = Field(pattern=r"^[^@\s!]+@[^@\s!]+![^@\s!=]+$", description="user@realm!tokenname")
    token_output: str = "restoreDrillPveToken"
    token_file: str | None = None


class Metrics(_Model):
    mode: Literal["textfile", "pushgateway"] = "textfile"
    textfile_dir: str = "/var/lib/prometheus/node-exporter"
    pushgateway_url: str | None = None
    # The drill's own Pushgateway writer (basic auth over TLS with the stack's CA).
    pushgateway_user: str | None = None
    pushgateway_password_file: str | None = None
    pushgateway_ca_file: str | None = None


class Check(_Model):
    """An application check in the restored guest (components/config.py AppCheck)."""

    name: str
    type: Literal["tcp", "http", "command"]
    timeout_seconds: float = Field(gt=0)
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    url: str | None = None
    expect_status: int = 200
    command: tuple[str, ...] = ()


class Target(_Model):
    name: str
    vmid: int = Field(ge=100)
    node: str
    service: str = ""
    canary_paths: tuple[str, ...] = Field(min_length=1)
    rpo_seconds: int = Field(gt=0)
    rto_seconds: int = Field(gt=0)
    kind: Literal["qemu", "lxc"] = "qemu"
    checks: tuple[Check, ...] = ()


class DrillPlan(_Model):
    schema_version: Literal[1]
    cluster: str
    pve: Pve
    pbs_storage: str
    lxc: Lxc = Lxc()
    scratch: Scratch
    isolation: Isolation
    timeouts: Timeouts
    schedule: Schedule
    canary: Canary = Canary()
    credentials: Credentials
    metrics: Metrics = Metrics()
    report_dir: str | None = None
    targets: tuple[Target, ...]

    @model_validator(mode="after")
    def _safe(self) -> DrillPlan:
        low, high = self.scratch.vmid_range
        problems = []
        names = [t.name for t in self.targets]
        for i, t in enumerate(self.targets):
            if low <= t.vmid <= high:
                problems.append(f"targets[{i}].vmid {t.vmid} lies in scratch.vmidRange: a drill would restore over it")
            if names.count(t.name) > 1:
                problems.append(f"targets[{i}].name {t.name!r} is listed twice")
            node = self.scratch.node or t.node
            if t.kind == "lxc" and node not in self.lxc.nodes:
                problems.append(f"targets[{i}]: container drills on node {node!r} need lxc.nodes.{node} (address)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise InputError(f"unknown target {name!r}: use one of {sorted(t.name for t in self.targets)}")


def _where(loc: tuple[int | str, ...]) -> str:
    path = OUTPUT_NAME
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse(outputs: dict[str, Any], source: str) -> DrillPlan:
    """Validate the ``restoreDrill`` entry of a stack-outputs mapping; InputError lists every problem."""
    if OUTPUT_NAME not in outputs:
        raise InputError(
            f"{source}: no `{OUTPUT_NAME}` output: run `pulumi up` (or `make plan` for a dry run) with a stack "
            "that has drill targets, or pass the right --outputs file"
        )
    try:
        return DrillPlan.model_validate(outputs[OUTPUT_NAME])
    except ValidationError as err:
        lines = [f"{source}: invalid `{OUTPUT_NAME}` output:"]
        for e in err.errors(include_url=False):
            msg = str(e["msg"]).removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown key: remove it (is the tool older than the program?)"
            elif e["type"] == "missing":
                msg = "required: add it (is the tool newer than the program?)"
            lines.append(f"  - {_where(tuple(e['loc']))}: {msg}")
        raise InputError("\n".join(lines)) from None


def _json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{source} is not JSON ({err}): pass the file `pulumi stack output --json` wrote") from None
    except RecursionError:
        raise InputError(f"{source} is nested too deeply to be stack outputs") from None


def read_outputs(path: Path | None, stack: str) -> tuple[dict[str, Any], str]:
    """Stack outputs from a JSON file, or from `pulumi stack output --json --show-secrets`."""
    if path is not None:
        try:
            data = _json(path.read_text(encoding="utf-8"), str(path))
        except OSError as err:
            raise InputError(f"cannot read --outputs {path}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path} is not UTF-8 text: pass the file `pulumi stack output --json` wrote") from None
        source = str(path)
    else:
        command = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        except FileNotFoundError:
            raise InputError("the pulumi CLI is not installed: pass --outputs FILE instead") from None
        except subprocess.TimeoutExpired:
            raise InputError("`pulumi stack output` took over 120 s: pass --outputs FILE instead") from None
        if done.returncode != 0:
            raise InputError(f"`{' '.join(command)}` failed: {done.stderr.strip()[:500]}")
        data = _json(done.stdout, f"`{' '.join(command)}`")
        source = f"stack {stack}"
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object of stack outputs")
    return data, source


def token_from(outputs: dict[str, Any], plan: DrillPlan, token_file: Path | None, env: dict[str, str]) -> str:
    """The PVE API token ``user@realm!name=secret``: secret output, token file, or environment."""
    if token_file is not None and not token_file.is_file():
        raise InputError(f"--token-file {token_file}: no such file (it holds user@realm!name=secret)")
    candidates: list[tuple[str, str | None]] = [
        (f"--token-file {token_file}", _read_secret(token_file) if token_file else None),
        ("OBS_RESTORE_DRILL_PVE_TOKEN", env.get("OBS_RESTORE_DRILL_PVE_TOKEN")),
        (f"output {plan.credentials.token_output}", _as_str(outputs.get(plan.credentials.token_output))),
    ]
    if plan.credentials.token_file:
        candidates.append((plan.credentials.token_file, _read_secret(Path(plan.credentials.token_file))))
    for where, value in candidates:
        if value and value != MASKED:
            token_id, sep, secret = value.rpartition("=")
            if sep and token_id != plan.credentials.token_id:
                raise InputError(f"{where}: a token of {token_id}, expected {plan.credentials.token_id}=<secret>")
            return secret
    raise InputError(
        "no PVE API token: read outputs with --show-secrets (the default without --outputs), set "
        f"OBS_RESTORE_DRILL_PVE_TOKEN, or pass --token-file (the host keeps it in {plan.credentials.token_file})"
    )


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
