"""`systemd-analyze security --offline=true` of every full unit obsstack renders (Debian 12's
systemd 252 has --offline, systemd-analyze(1)): each unit's exposure is printed; obsstack's own tool
units (restore drill, canary, PBS collector, ACME renewal, silence check, on-call drill) fail above
3.0. The daemons' drop-ins (components/render/systemd.py) extend Debian's units and cannot be
scored without them; tests/host boots them under systemd instead."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components import config as stack_config
from components.inventory import build
from components.render import host_files
from tests.conftest import load_sections

LIMIT = 3.0
TOOL_UNITS = (
    "obs-restore-drill.service",
    "obs-canary.service",
    "obsstack-pbs-collector.service",
    "obs-acme-renew.service",
    "obs-silence-check.service",
    "obs-oncall-drill.service",
)


def rendered_units() -> dict[str, str]:
    """Unit name -> text, from the example stack with tls acme (so the renewer is rendered too)."""
    sections = copy.deepcopy(load_sections())
    del sections["pbs"]["fingerprint"]
    sections["monitoring"]["tls"] = {"mode": "acme", "email": "ops@example.net", "dns_provider": "cloudflare"}
    for host in sections["monitoring"]["hosts"]:
        host["dns_name"] = f"{host['name']}.home.example.net"
    sections["backups"]["drill"] = {**sections["backups"].get("drill", {}), "metrics": "pushgateway"}
    config = stack_config.validate(sections)
    units: dict[str, str] = {}
    for f in host_files(config, build(config)):
        match = re.fullmatch(r"/etc/systemd/system/([^/]+\.service)", f.path)
        if match:
            units.setdefault(match.group(1), f.content)
    return units


UNITS = rendered_units()


def exposure(analyze: str, path: Path) -> float:
    run = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(path)], capture_output=True, text=True, check=False
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", run.stdout)
    assert found, f"no exposure for {path.name}:\n{run.stdout}\n{run.stderr}"
    return float(found.group(1))


def test_every_tool_unit_is_rendered() -> None:
    assert set(TOOL_UNITS) <= set(UNITS), sorted(UNITS)


@pytest.mark.parametrize("unit", sorted(UNITS), ids=sorted(UNITS))
def test_exposure(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required (systemd)"
    path = tmp_path / unit
    path.write_text(UNITS[unit])
    score = exposure(analyze, path)
    print(f"{unit}: exposure {score:.1f}")
    if unit in TOOL_UNITS:
        assert score <= LIMIT, f"{unit}: exposure {score} above {LIMIT}"
