"""Units no longer shipped are removed: each install target records the units it installed on its
host; a unit in the previous record (or, before the first, an installed unit of obsstack's names)
that it ships no more is stopped, disabled and removed, timers first."""

from __future__ import annotations

import dataclasses
import fnmatch
import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from components import config as stack_config
from components import inventory as stack_inventory
from components.monitoring import scripts, services
from components.render import host_files, layout
from tests.conftest import load_sections
from tests.unit.monitoring_helpers import with_replicas
from tests.unit.test_monitoring_scripts import fake_host, rooted, run_script

UNIT = "[Unit]\nDescription=x\n"


def _files_spec(root: Path, units: list[str]) -> tuple[services.ServiceSpec, Path]:
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    files = tuple(services.ManagedFile(f"/etc/systemd/system/{u}", "0644", user, group) for u in sorted(units))
    spec = services.ServiceSpec(
        "files", None, None, files=files, units_manifest=scripts.units_manifest("mon-1-services")
    )
    staged = Path(f"{root}{layout.STAGING_DIR}{root}")
    for unit in units:
        path = Path(f"{staged}/etc/systemd/system/{unit}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(UNIT)
    return spec, staged


def _apply(tmp_path: Path, units: list[str]) -> tuple[str, list[str], Path]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    if not (tmp_path / "calls").exists():
        fake_host(tmp_path)
    _, log, env = fake_host_again(tmp_path)
    spec, _ = _files_spec(root, units)
    done = run_script(rooted(scripts.apply_script(spec), root), env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    log.write_text("")
    return done.stdout, calls, root


def fake_host_again(tmp_path: Path):
    """The same fake host (root, stubs, log) for a second run."""
    root, log = tmp_path / "root", tmp_path / "calls"
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "LOG": str(log), "STATE": str(tmp_path / "state")}
    return root, log, env


def test_a_unit_no_longer_shipped_is_stopped_disabled_and_removed(tmp_path: Path) -> None:
    _, _, root = _apply(tmp_path, ["obs-a.service", "obs-a.timer", "obs-b.service", "obs-b.timer"])
    manifest = Path(f"{root}{scripts.UNITS_DIR}/mon-1-services.list")
    assert manifest.read_text().split() == ["obs-a.service", "obs-a.timer", "obs-b.service", "obs-b.timer"]

    out, calls, _ = _apply(tmp_path, ["obs-b.service", "obs-b.timer"])
    disabled = [c for c in calls if c.startswith("systemctl disable --now")]
    assert disabled == ["systemctl disable --now --quiet obs-a.timer", "systemctl disable --now --quiet obs-a.service"]
    assert not (root / "etc/systemd/system/obs-a.timer").exists()
    assert not (root / "etc/systemd/system/obs-a.service").exists()
    assert (root / "etc/systemd/system/obs-b.timer").exists()
    assert "systemctl daemon-reload" in calls
    assert "obsstack: removed obs-a.timer (no longer shipped)" in out
    assert manifest.read_text().split() == ["obs-b.service", "obs-b.timer"]

    again, calls, _ = _apply(tmp_path, ["obs-b.service", "obs-b.timer"])
    assert "obsstack: files unchanged" in again
    assert not [c for c in calls if "disable" in c]


def test_before_the_first_manifest_units_of_obsstacks_names_left_behind_are_removed(tmp_path: Path) -> None:
    """The on-call drill moved to the primary: a secondary installed by an earlier version still
    has its timer; the first run with a manifest removes it, and leaves other units alone."""
    root = tmp_path / "root"
    fake_host(tmp_path)
    units = root / "etc/systemd/system"
    for name in ("obs-oncall-drill.service", "obs-oncall-drill.timer", "someone-elses.timer"):
        (units / name).write_text(UNIT)
    out, calls, _ = _apply(tmp_path, ["obs-silence-check.service", "obs-silence-check.timer"])
    assert not (units / "obs-oncall-drill.timer").exists() and not (units / "obs-oncall-drill.service").exists()
    assert (units / "someone-elses.timer").exists()
    assert "systemctl disable --now --quiet obs-oncall-drill.timer" in calls
    assert "obsstack: removed obs-oncall-drill.service (no longer shipped)" in out


def test_every_unit_the_plain_files_ship_has_an_obsstack_name() -> None:
    """The first-run cleanup finds earlier units by these names: a unit named otherwise would
    never be cleaned up, one of another target could be."""
    config = stack_config.validate(with_replicas(load_sections(), 2))
    inventory = stack_inventory.build(config)
    shipped = [
        f.path.rsplit("/", 1)[1]
        for f in host_files(config, inventory)
        if services.owner_of(f.path) == "files" and f.path.startswith("/etc/systemd/system/") and f.path.count("/") == 4
    ]
    assert shipped
    for unit in shipped:
        assert any(fnmatch.fnmatch(unit, g) for g in scripts.OWN_UNIT_GLOBS), unit


def test_each_host_has_one_target_shipping_units(example_config, example_inventory) -> None:
    """Monitoring hosts (MonitoringHost), drill targets (the canary) and the PBS host (the
    collector) are different hosts, so one target's first-run cleanup never meets another's units."""
    monitoring = {m.name for m in example_inventory.monitoring}
    drills = {t.name for t in example_inventory.drill_targets}
    pbs = {example_config.pbs.host}
    assert not (monitoring & drills) and not (monitoring & pbs) and not (drills & pbs)


def test_the_plain_files_step_of_every_target_passes_shellcheck(example_config, example_inventory, tmp_path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required by this test (apt-get install shellcheck)"
    node = example_inventory.monitoring[0]
    mine = [f for f in host_files(example_config, example_inventory) if f.host == node.name]
    (spec,) = services.specs(example_config, node.ip, mine, [], only=("files",))
    spec = dataclasses.replace(spec, units_manifest=scripts.units_manifest(f"{node.name}-services"))
    script = scripts.apply_script(spec)
    assert "shipped_units=(" in script
    run = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", "-"], input=script, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout
