"""Application checks in the restored guest (drill.checks): run for real as bash scripts by the fake
PVE's guest agent, with stub applications (curl, pg_isready) and a real TCP listener; a failing
check fails the drill, is reported and exported as obs_restore_drill_check_* metrics."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components import outputs as stack_outputs
from tests.fixtures.fake_pve import TOKEN_ID, TOKEN_SECRET, FakePve, guest_files, make_cert
from tests.unit.test_restore_drill import textfile_metrics
from tools.restore_drill.__main__ import main
from tools.restore_drill.checks import script
from tools.restore_drill.schema import Check

TARGET = "gitea"
CANARY_AGE = 5 * 3600


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def listener() -> Iterator[int]:
    """The restored application's TCP port (a real socket on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    """Stub applications inside the guest: every one healthy until a test breaks it."""
    bin_dir = tmp_path / "guest-bin"
    bin_dir.mkdir()
    stub(bin_dir, "curl", "printf 200")
    stub(bin_dir, "pg_isready", 'echo "/run/postgresql:5432 - accepting connections"')
    return bin_dir


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def checks_config(example_sections: dict[str, Any], port: int) -> stack_config.StackConfig:
    for asset in example_sections["inventory"]["assets"]:
        if asset["name"] == TARGET:
            asset["drill"]["checks"] = [
                {"name": "ssh", "type": "tcp", "port": port, "timeout": "3s"},
                {"name": "web", "type": "http", "url": "http://127.0.0.1:3000/api/healthz", "timeout": "3s"},
                {"name": "db", "type": "command", "command": ["pg_isready", "-q"], "timeout": "3s"},
            ]
    return stack_config.validate(example_sections)


@pytest.fixture
def outputs_file(
    tmp_path: Path, cert: tuple[Path, Path], example_sections, listener: int, apps: Path
) -> Iterator[tuple[Path, FakePve]]:
    config = checks_config(example_sections, listener)
    inventory = stack_inventory.build(config)
    fake = FakePve(*cert)
    fake.guest_bin = apps
    now = time.time()
    for t in inventory.drill_targets:
        files = guest_files(t.name, {f"{p}/x.conf": "data\n" for p in t.canary_paths}, now - CANARY_AGE)
        fake.add_guest(t.vmid, t.node, files)
        fake.add_backup("pbs-main", t.vmid, int(now - CANARY_AGE + 1800))
    fake.start()
    drill = stack_outputs.restore_drill_output(config, inventory)
    drill["pve"].update(endpoint=f"https://127.0.0.1:{fake.port}/", caFile=str(cert[0]))
    drill["timeouts"].update(restoreSeconds=2, agentSeconds=2, verifySeconds=2, startSeconds=2,
                             cleanupSeconds=10, requestSeconds=1, pollSeconds=0.02)  # fmt: skip
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"restoreDrill": drill, "restoreDrillPveToken": f"{TOKEN_ID}={TOKEN_SECRET}"}))
    yield path, fake
    fake.stop()


def run(outputs: Path, tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    out = io.StringIO()
    code = main(["--outputs", str(outputs), "--target", TARGET, "--report-dir", str(tmp_path / "state"),
                 "--textfile-dir", str(tmp_path / "textfile")], out)  # fmt: skip
    report = json.loads(sorted((tmp_path / "state" / "reports").glob("*.json"))[-1].read_text())
    return code, out.getvalue(), report


def check_metrics(tmp_path: Path) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = (tmp_path / "textfile" / f"obs_restore_drill_{TARGET}.prom").read_text()
    return {
        (sample.name, sample.labels["check"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "check" in sample.labels
    }


def test_passing_checks_verify_the_drill(outputs_file, tmp_path: Path) -> None:
    outputs, fake = outputs_file
    code, out, report = run(outputs, tmp_path)
    assert code == 0, out
    (result,) = report["results"]
    assert [(c["name"], c["status"]) for c in result["checks"]] == [("ssh", "passed"), ("web", "passed"),
                                                                      ("db", "passed")]  # fmt: skip
    assert result["steps"][-2]["name"] == "application checks" and result["steps"][-2]["status"] == "ok"
    metrics = check_metrics(tmp_path)
    assert {metrics[("obs_restore_drill_check_status", c)] for c in ("ssh", "web", "db")} == {1.0}
    assert all(metrics[("obs_restore_drill_check_duration_seconds", c)] >= 0 for c in ("ssh", "web", "db"))
    markdown = next((tmp_path / "state" / "reports").glob("*.md")).read_text()
    assert "| web | http | passed |" in markdown
    assert not [v for v in fake.vms if 9900 <= v <= 9999]


BREAKS = [
    ("http-500", lambda bin_dir, port: stub(bin_dir, "curl", "printf 500"), "web", "HTTP 500"),
    ("sql-down", lambda bin_dir, port: stub(bin_dir, "pg_isready", 'echo "no response" >&2; exit 2'), "db",
     "exit 2: no response"),
    ("command-hangs", lambda bin_dir, port: stub(bin_dir, "pg_isready", "exec sleep 60"), "db", "exit 124"),
    ("curl-missing-in-guest", lambda bin_dir, port: (bin_dir / "curl").write_text("#!/bin/sh\nexit 127\n"), "web",
     "HTTP"),
]  # fmt: skip


@pytest.mark.parametrize("case", BREAKS, ids=[b[0] for b in BREAKS])
def test_a_failing_check_fails_the_drill_and_the_scratch_vm_goes(outputs_file, tmp_path: Path, apps: Path, case):
    _, breaks, failing, message = case
    outputs, fake = outputs_file
    breaks(apps, None)
    code, out, report = run(outputs, tmp_path)
    assert code == 1, out
    (result,) = report["results"]
    assert result["status"] == "failed" and result["failedStep"] == "application checks"
    assert f"{failing}: " in result["error"] and message in result["error"], result["error"]
    statuses = {c["name"]: c["status"] for c in result["checks"]}
    assert statuses.pop(failing) == "failed" and set(statuses.values()) == {"passed"}
    assert check_metrics(tmp_path)[("obs_restore_drill_check_status", failing)] == 0
    assert textfile_metrics(tmp_path, TARGET)["obs_restore_drill_last_status"] == 0
    assert result["scratchDestroyed"] is True and not [v for v in fake.vms if 9900 <= v <= 9999]


def test_a_closed_port_fails_the_tcp_check(outputs_file, tmp_path: Path, listener: int) -> None:
    outputs, _ = outputs_file
    data = json.loads(outputs.read_text())
    target = next(t for t in data["restoreDrill"]["targets"] if t["name"] == TARGET)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        target["checks"][0]["port"] = sock.getsockname()[1]
    outputs.write_text(json.dumps(data))
    code, _, report = run(outputs, tmp_path)
    assert code == 1
    assert "ssh: " in report["results"][0]["error"] and "no connection to 127.0.0.1:" in report["results"][0]["error"]


def test_a_check_gives_up_at_its_timeout() -> None:
    """The script's own deadline ends the retries: a 1 s check of a dead command ends within seconds."""
    import subprocess

    check = Check(name="dead", type="command", timeout_seconds=1, command=("false",))
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", script(check)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1 and "exit 1" in done.stderr
    assert time.monotonic() - started < 8


CONFIG_ERRORS = [
    ("tcp-without-port", {"name": "a", "type": "tcp"}, "checks[0].port", "needs `port`"),
    ("http-with-port", {"name": "a", "type": "http", "url": "http://x/", "port": 80}, "checks[0].port", "only tcp"),
    ("command-empty", {"name": "a", "type": "command"}, "checks[0].command", "needs `command`"),
    ("ftp-url", {"name": "a", "type": "http", "url": "ftp://x/"}, "checks[0].url", "not an http(s) URL"),
    ("zero-timeout", {"name": "a", "type": "tcp", "port": 22, "timeout": "0s"}, "checks[0].timeout", "longer"),
]


@pytest.mark.parametrize("case", CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_bad_checks_are_refused_naming_the_field(example_sections, case) -> None:
    _, check, where, message = case
    gitea = next(a for a in example_sections["inventory"]["assets"] if a["name"] == TARGET)
    gitea["drill"]["checks"] = [check]
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(example_sections)
    assert f"obsstack:inventory.assets[5].drill.{where}" in str(err.value) and message in str(err.value)


def test_duplicate_check_names_are_refused(example_sections) -> None:
    gitea = next(a for a in example_sections["inventory"]["assets"] if a["name"] == TARGET)
    gitea["drill"]["checks"] = [{"name": "a", "type": "tcp", "port": 22}, {"name": "a", "type": "tcp", "port": 23}]
    with pytest.raises(stack_config.ConfigError, match="duplicate check names"):
        stack_config.validate(example_sections)
