"""Drill renderers: the canary really proves a restore, units and scripts pass their linters,
and the restoreDrill output is exactly what the drill tool accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import config as stack_config
from components.outputs import restore_drill_output
from components.render import drill as render
from components.render import host_files
from tools.restore_drill.drill import Canary
from tools.restore_drill.schema import DrillPlan, InputError, parse

ROOT = Path(__file__).resolve().parents[2]


def need(binary: str) -> str:
    path = shutil.which(binary)
    assert path, f"{binary} is required by this test (apt-get install it; see .ci/run)"
    return path


def local_canary(target, tmp_path: Path) -> tuple[Path, Path]:
    """The rendered canary script, pointed at a temp state dir (everything else as shipped)."""
    state = tmp_path / "state"
    script = render.canary_script(target).replace(render.CANARY_DIR, str(state))
    path = tmp_path / "obs-canary"
    path.write_text(script)
    path.chmod(0o755)
    return path, state


def sha256_check(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`sha256sum --check --strict` exactly as the drill runs it inside the restored guest."""
    command = ["sha256sum", "--check", "--strict", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)


def test_canary_manifest_covers_only_what_the_canary_owns(example_inventory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "live.db").write_text("rows\n")
    target = example_inventory.drill_targets[0]
    target = type(target)(**{**target.__dict__, "canary_paths": (str(data),)})
    script, state = local_canary(target, tmp_path)

    for _ in range(2):  # a second run replaces the payload and leaves no older one behind
        run = subprocess.run([str(script)], capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr
    canary = Canary.parse((state / "canary.json").read_text())
    assert canary.files == render.PAYLOAD_FILES + 1, "the payload and the nonce"
    assert canary.manifest == str(state / "manifest.sha256")
    assert re.fullmatch(r"[0-9a-f]{32}", canary.nonce)
    assert [p.name for p in state.glob("payload.*")] == [f"payload.{canary.nonce}"]
    assert str(data) not in (state / "manifest.sha256").read_text(), "live data is never byte-compared"
    assert json.loads((state / "canary.json").read_text())["paths"] == [str(data)]
    # What the drill runs inside the restored guest, with the same manifest digest check first.
    integrity = sha256_check("-", stdin=f"{canary.manifest_sha256}  {canary.manifest}\n")
    assert integrity.returncode == 0, integrity.stdout + integrity.stderr
    (data / "live.db").write_text("more rows\n")  # the database moved on: still verified
    ok = sha256_check("--quiet", canary.manifest)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    (state / f"payload.{canary.nonce}" / "3").write_bytes(b"bit rot")
    bad = sha256_check("--quiet", canary.manifest)
    assert bad.returncode == 1 and "/3: FAILED" in bad.stdout
    assert oct((state / "canary.json").stat().st_mode & 0o777) == "0o600"


def test_canary_gets_a_new_nonce_every_run(example_inventory, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    target = example_inventory.drill_targets[0]
    target = type(target)(**{**target.__dict__, "canary_paths": (str(tmp_path / "d"),)})
    script, state = local_canary(target, tmp_path)
    nonces = set()
    for _ in range(2):
        subprocess.run([str(script)], check=True, capture_output=True)
        nonces.add(json.loads((state / "canary.json").read_text())["nonce"])
    assert len(nonces) == 2


def test_canary_script_passes_shellcheck(example_inventory, tmp_path: Path) -> None:
    shellcheck = need("shellcheck")
    for target in example_inventory.drill_targets:
        path = tmp_path / f"{target.name}.sh"
        path.write_text(render.canary_script(target))
        run = subprocess.run([shellcheck, "-s", "bash", str(path)], capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stdout


def test_units_pass_systemd_analyze_verify(example_config, example_inventory, tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    target = example_inventory.drill_targets[0]
    canary = tmp_path / "obs-canary"
    canary.write_text(render.canary_script(target))
    canary.chmod(0o755)
    units = {
        "obs-canary.service": render.canary_service(target).replace(render.CANARY_SCRIPT, str(canary)),
        "obs-canary.timer": render.canary_timer(example_config, target),
        "obs-restore-drill.service": render.drill_service(example_config).replace(
            f"{render.DRILL_VENV}/bin/python", sys.executable
        ),
        "obs-restore-drill.timer": render.drill_timer(example_config),
    }
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    paths = [str(tmp_path / name) for name in units]
    run = subprocess.run([analyze, "verify", *paths], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    ("schedule", "lead", "expected"),
    [
        ("02:00", "30m", "*-*-* 01:30:00"),
        ("sat 02:00", "30m", "Sat *-*-* 01:30:00"),
        ("mon,wed 23:15", "1h", "Mon,Wed *-*-* 22:15:00"),
        ("00:10", "30m", "*-*-* 23:40:00"),
        ("sat 00:10", "30m", None),
        ("mon..fri 02:00", "30m", None),
        ("*/4:00", "30m", None),
    ],
    ids=[
        "daily",
        "weekday",
        "two-days",
        "wraps-midnight",
        "weekday-wrap-refused",
        "range-refused",
        "repeating-refused",
    ],
)
def test_canary_calendar(schedule: str, lead: str, expected: str | None) -> None:
    assert stack_config.canary_calendar(schedule, lead) == expected


def test_underivable_canary_time_asks_for_canary_schedule(example_sections) -> None:
    example_sections["backups"]["schedule"] = "mon..fri 02:00"
    # Weekdays only leave 72h over the weekend: the RPOs must allow it (config._check_rpo_fits_schedule).
    example_sections["backups"]["rpo"] = "72h"
    for asset in example_sections["inventory"]["assets"]:
        if "drill" in asset:
            asset["drill"]["rpo"] = "72h"
    with pytest.raises(stack_config.ConfigError, match=r"backups\.drill\.canary_schedule: cannot derive"):
        stack_config.validate(example_sections)
    example_sections["backups"]["drill"]["canary_schedule"] = "Mon..Fri *-*-* 01:00:00"
    assert stack_config.validate(example_sections).backups.canary_on_calendar() == "Mon..Fri *-*-* 01:00:00"


def test_output_is_what_the_tool_accepts(example_config, example_inventory) -> None:
    output = restore_drill_output(example_config, example_inventory)
    plan = parse({"restoreDrill": output}, "test")
    assert isinstance(plan, DrillPlan)
    assert [t.name for t in plan.targets] == [t.name for t in example_inventory.drill_targets]
    gitea = plan.target("gitea")
    assert (gitea.vmid, gitea.node, gitea.canary_paths) == (110, "pve1", ("/etc", "/var/lib/gitea"))
    assert (gitea.rpo_seconds, gitea.rto_seconds) == (86400, 7200)
    assert plan.timeouts.restore_seconds == 90 * 60 and plan.schedule.every_seconds == 14 * 86400
    assert plan.credentials.token_id == "obs-drill@pve!drill"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o["targets"][0].update(vmid=9950), r"targets\[0\]\.vmid 9950 lies in scratch\.vmidRange"),
        (lambda o: o.update(schemaVersion=2), r"restoreDrill\.schemaVersion"),
        (lambda o: o["isolation"].update(mode="bridge", bridge=None), r"restoreDrill\.isolation: .*needs `bridge`"),
        (lambda o: o["pve"].update(endpoint="http://pve:8006/"), r"restoreDrill\.pve\.endpoint"),
        (lambda o: o["targets"][0].pop("canaryPaths"), r"targets\[0\]\.canaryPaths: required"),
        (lambda o: o.update(surprise=1), r"restoreDrill\.surprise: unknown key"),
    ],
    ids=[
        "target-in-scratch-range",
        "newer-schema",
        "bridge-without-name",
        "plain-http",
        "missing-paths",
        "unknown-key",
    ],
)
def test_bad_output_names_the_field(example_config, example_inventory, mutate, message: str) -> None:
    output = restore_drill_output(example_config, example_inventory)
    mutate(output)
    with pytest.raises(InputError, match=message):
        parse({"restoreDrill": output}, "outputs.json")


def test_shipped_files(example_config, example_inventory) -> None:
    files = {(f.host, f.path): f for f in host_files(example_config, example_inventory)}
    for t in example_inventory.drill_targets:
        assert files[(t.name, render.CANARY_SCRIPT)].mode == "0755"
        assert f"paths_json='{json.dumps(list(t.canary_paths))}'" in files[(t.name, render.CANARY_SCRIPT)].content
        assert "OnCalendar=*-*-* 01:30:00" in files[(t.name, render.CANARY_TIMER)].content
    mon = example_inventory.monitoring[0].name
    shipped = json.loads(files[(mon, render.DRILL_OUTPUTS)].content)
    assert parse(shipped, "host").report_dir == render.DRILL_STATE
    for rel in ("tools/__init__.py", "tools/restore_drill/__main__.py", "tools/restore_drill/schema.py"):
        assert files[(mon, f"{render.DRILL_HOME}/{rel}")].content == (ROOT / rel).read_text()
    pins = dict(line.split("==") for line in files[(mon, render.DRILL_REQUIREMENTS)].content.splitlines())
    assert pins["proxmoxer"] == "2.3.0" and set(pins) == set(render.TOOL_PACKAGES)
    assert "--all --due" in files[(mon, render.DRILL_SERVICE)].content
    assert "OnCalendar=*-*-* 10:00:00" in files[(mon, render.DRILL_TIMER)].content


def test_only_one_monitoring_host_runs_drills(example_sections) -> None:
    example_sections["monitoring"]["replicas"] = 2
    example_sections["monitoring"]["hosts"].append(
        {"name": "mon-2", "vmid": 201, "node": "pve3", "address": "10.0.20.11/24"}
    )
    config = stack_config.validate(example_sections)
    from components import inventory as stack_inventory

    files = render.files(config, stack_inventory.build(config))
    assert {f.host for f in files if f.path == render.DRILL_TIMER} == {"mon-1"}
