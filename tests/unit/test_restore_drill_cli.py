"""The drill CLI around the drill itself: the dry run from `make plan`'s outputs (no credentials),
input errors, where the token comes from, and metrics pushed to a real Pushgateway."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from components.outputs import restore_drill_output
from tests.fixtures.pushgateway import pushgateway_fixture, scrape  # noqa: F401 - the pushgateway fixture
from tools.plan.__main__ import main as plan_main
from tools.restore_drill import metrics
from tools.restore_drill.__main__ import main
from tools.restore_drill.drill import Result
from tools.restore_drill.schema import InputError, parse, token_from


@pytest.fixture
def drill(example_config, example_inventory) -> dict:
    """The example stack's restoreDrill output."""
    return restore_drill_output(example_config, example_inventory)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def test_dry_run_from_plan_outputs_needs_no_credentials(tmp_path: Path, example_inventory, monkeypatch) -> None:
    assert plan_main(["--out", str(tmp_path / "plan"), "--quiet"]) == 0
    outputs = tmp_path / "plan" / "outputs.json"
    assert json.loads(outputs.read_text())["restoreDrillPveToken"] == "[secret]"
    monkeypatch.delenv("OBS_RESTORE_DRILL_PVE_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out = run("--outputs", str(outputs), "--all", "--dry-run")
    assert code == 0, out
    for i, target in enumerate(example_inventory.drill_targets, 1):
        assert f"[{i}/{len(example_inventory.drill_targets)}] {target.name}: VM {target.vmid} on {target.node}" in out
        assert f"sha256sum -c its manifest of {', '.join(target.canary_paths)}" in out
    assert "destroy the scratch VM (always" in out
    assert not (tmp_path / "build").exists(), "a dry run writes nothing"


def test_dry_run_of_one_target(tmp_path: Path, example_config, example_inventory) -> None:
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"restoreDrill": restore_drill_output(example_config, example_inventory)}))
    code, out = run("--outputs", str(path), "--target", "postgres", "--dry-run")
    assert code == 0 and "postgres" in out and "gitea" not in out


@pytest.mark.parametrize(
    "case",
    [
        ("not json", ["--all"], "is not JSON"),
        ("{}", ["--all"], "no `restoreDrill` output"),
        (None, ["--target", "nope"], "unknown target 'nope': use one of"),
        (None, ["--all"], "no PVE API token"),
    ],
    ids=["not-json", "no-output", "unknown-target", "masked-token"],
)
def test_bad_input_exits_2_with_a_fix(
    tmp_path: Path, drill: dict, capsys, monkeypatch, case: tuple[str | None, list[str], str]
) -> None:
    content, args, message = case
    monkeypatch.delenv("OBS_RESTORE_DRILL_PVE_TOKEN", raising=False)
    path = tmp_path / "o.json"
    drill["credentials"]["tokenFile"] = str(tmp_path / "absent")
    path.write_text(
        content if content is not None else json.dumps({"restoreDrill": drill, "restoreDrillPveToken": "[secret]"})
    )
    code, _ = run("--outputs", str(path), "--report-dir", str(tmp_path / "r"), *args)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_token_sources(tmp_path: Path, example_config, example_inventory) -> None:
    plan = parse({"restoreDrill": restore_drill_output(example_config, example_inventory)}, "t")
    token_file = tmp_path / "token"
    token_file.write_text("obs-drill@pve!drill=from-file\n")
    assert token_from({}, plan, token_file, {}) == "from-file"
    assert token_from({}, plan, None, {"OBS_RESTORE_DRILL_PVE_TOKEN": "obs-drill@pve!drill=from-env"}) == "from-env"
    assert token_from({"restoreDrillPveToken": "obs-drill@pve!drill=from-output"}, plan, None, {}) == "from-output"
    assert token_from({"restoreDrillPveToken": "bare-secret"}, plan, None, {}) == "bare-secret"
    with pytest.raises(InputError, match=r"a token of root@pam!x, expected obs-drill@pve!drill"):
        token_from({"restoreDrillPveToken": "root@pam!x=oops"}, plan, None, {})


def test_metrics_pushed_to_a_real_pushgateway(pushgateway: str) -> None:
    state: dict[str, dict] = {}

    def attempt(
        target: str, finished_at: float, status: str, rto: float | None = None, rpo: float | None = None
    ) -> None:
        result = Result(target, 110, "pve1", status=status, finished_at=finished_at, rto_seconds=rto, rpo_seconds=rpo,
                        rto_budget_seconds=7200, rpo_budget_seconds=86400, scratch_destroyed=True)  # fmt: skip
        metrics.record(state, result)
        metrics.push(pushgateway, target, state[target])

    attempt("gitea", 1_700_000_000.0, "verified", rto=812.5, rpo=30_000.0)
    attempt("gitea", 1_700_100_000.0, "failed")
    attempt("postgres", 1_700_100_500.0, "verified", rto=100.0, rpo=200.0)
    text = scrape(pushgateway)
    labels = 'instance="",job="obs_restore_drill",target="gitea"'
    assert f"obs_restore_drill_last_status{{{labels}}} 0" in text
    assert f"obs_restore_drill_last_run_timestamp_seconds{{{labels}}} 1.7001e+09" in text
    assert f"obs_restore_drill_last_success_timestamp_seconds{{{labels}}} 1.7e+09" in text, "kept from the success"
    assert f"obs_restore_drill_rto_seconds{{{labels}}} 812.5" in text
    assert f"obs_restore_drill_rpo_seconds{{{labels}}} 30000" in text
    assert 'obs_restore_drill_last_status{instance="",job="obs_restore_drill",target="postgres"} 1' in text
    assert f"obs_restore_drill_rto_budget_seconds{{{labels}}} 7200" in text
