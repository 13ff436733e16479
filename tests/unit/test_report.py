"""`make report` against a real Prometheus holding three backfilled days whose events we know."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit import report_data
from tests.unit.report_data import DAY, GIB, HOUR, History
from tools.report import render
from tools.report.__main__ import build, main, parse_time
from tools.report.figures import COVERAGE_FROM_UP, Budgets, Window, default_step, episodes, increase
from tools.report.prometheus import Series

ROOT = Path(__file__).resolve().parents[2]
STEP = 300  # the report's default step for a window this short
USER, PASSWORD = "report", "correct horse battery staple"


@pytest.fixture(scope="module")
def history() -> History:
    return report_data.aligned_history()


@pytest.fixture(scope="module")
def prometheus(history: History, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for name in ("prometheus", "promtool"):
        try:
            report_data.binary(name)
        except RuntimeError as err:
            pytest.fail(str(err))
    with report_data.prometheus_with(history, tmp_path_factory.mktemp("prometheus"), (USER, PASSWORD)) as url:
        yield url


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "prometheus-password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def made(
    prometheus: str, history: History, password_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """`make report` (the venv stamp taken as up to date), its output directory and its stderr."""
    out = tmp_path_factory.mktemp("report")
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            "report",
            f"PROMETHEUS={prometheus}",
            f"FROM={history.start}",
            f"TO={history.end}",
            f"REPORT_OUT={out}",
            f"REPORT_ARGS=--user {USER} --password-file {password_file}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stderr


@pytest.fixture(scope="module")
def figures(made: tuple[Path, str]) -> dict[str, Any]:
    return json.loads((made[0] / "report.json").read_text())


@pytest.fixture(scope="module")
def markdown(made: tuple[Path, str]) -> str:
    return (made[0] / "report.md").read_text()


def test_progress_is_shown_per_section(made: tuple[Path, str]) -> None:
    _, stderr = made
    for i, title in enumerate(["scrape coverage", "alerts by severity and service", "notifications"], start=1):
        assert f"[{i}/8] {title} ... done" in stderr
    assert "[8/8] PBS datastores ... done" in stderr


def test_scrape_coverage(figures: dict[str, Any], history: History, markdown: str) -> None:
    coverage = figures["derived"]["coverage"]
    dip = (history.coverage_dip[1] - history.coverage_dip[0]) / (history.end - history.start)
    assert coverage["time_at_target"] == pytest.approx(1 - dip, abs=2 * STEP / (history.end - history.start))
    assert coverage["minimum"] == pytest.approx(0.9)
    assert coverage["mean"] == pytest.approx(1 - 0.1 * dip, abs=0.001)
    assert figures["coverage"]["query"] == "min(obs:scrape_coverage:ratio)"
    assert "mean 99.7%, min 90.0%" in markdown


def test_alerts_by_severity_and_service(figures: dict[str, Any], history: History, markdown: str) -> None:
    groups = {(g["severity"], g["service"]): g for g in figures["alerts"]["groups"]}
    assert set(groups) == {("critical", "dns"), ("warning", "media")}  # no Watchdog, no pending alert
    assert groups[("critical", "dns")]["episodes"] == len(history.target_down)
    assert groups[("warning", "media")]["episodes"] == 1
    down = sum(b - a for a, b in history.target_down)
    # each episode is seen to the step, plus up to one lookback past its last backfilled sample
    assert abs(groups[("critical", "dns")]["firing_seconds"] - down) <= len(history.target_down) * 2 * STEP
    pressure = history.memory_pressure[1] - history.memory_pressure[0]
    assert abs(groups[("warning", "media")]["firing_seconds"] - pressure) <= 2 * STEP
    assert "| critical | dns | 2 |" in markdown


def test_notifications_count_resets_and_failures(figures: dict[str, Any], history: History, markdown: str) -> None:
    by_name = {i["name"]: i for i in figures["notifications"]}
    assert by_name["slack"]["sent"] == history.slack_sent == 72
    assert by_name["slack"]["failed"] == history.slack_failed
    assert by_name["webhook"]["sent"] == history.webhook_sent and by_name["webhook"]["failed"] == 0
    assert by_name["email"]["sent"] == 0
    assert f"| slack | {history.slack_sent} | {history.slack_failed} | 4.2% |" in markdown
    assert "| Notifications failed | 0 | 3 of 82 (3.7%) | NO |" in markdown


def test_mtta_and_oncall_drills(figures: dict[str, Any], history: History, markdown: str) -> None:
    acks = [a for _, _, a in history.acks]
    assert figures["mtta"]["acknowledgements"] == len(acks)
    assert figures["mtta"]["seconds"] == pytest.approx(sum(acks) / len(acks))
    assert f"MTTA 5.0 min over {len(acks)} acknowledgements" in markdown
    drill = history.start + history.oncall_drill_at
    assert figures["oncall"]["successes"] == [drill]
    assert figures["oncall"]["age_seconds"] == history.end - drill


def test_backups_per_guest_against_the_rpo(figures: dict[str, Any], history: History, markdown: str) -> None:
    guests = {g["vmid"]: g for g in figures["backups"]}
    last_night = history.start + history.nightly[-1]
    assert {v: g["successes"] for v, g in guests.items()} == {"110": 3, "120": 2, "121": 1}
    assert all(g["nights"] == 3 for g in guests.values())
    assert guests["110"]["last_age_seconds"] == history.end - last_night
    assert guests["121"]["last_age_seconds"] == history.end - (history.start + history.nightly[0])
    assert guests["110"]["max_age_seconds"] == pytest.approx(DAY, abs=STEP)
    assert guests["120"]["max_age_seconds"] == pytest.approx(2 * DAY, abs=STEP)
    within = {v: d["within_rpo"] for v, d in figures["derived"]["backups"].items()}
    assert within == {"110": True, "120": False, "121": False}
    assert (guests["110"]["last_status"], guests["121"]["last_status"]) == (1.0, 0.0)
    assert "| 110 | pve1 | pbs-main | 3/3 | 100.0% | 2.0 h |" in markdown
    assert "| 121 | pve2 | pbs-main | 1/3 | 33.3% | 2.1 d | 2.1 d | NO | FAILED |" in markdown


def test_restore_drills_with_rto_and_rpo(figures: dict[str, Any], history: History, markdown: str) -> None:
    runs = {t["target"]: t["runs"] for t in figures["drills"]}
    s = history.start
    assert [(r["timestamp"], r["status"], r["rto_seconds"], r["rpo_seconds"]) for r in runs["gitea"]] == [
        (s + 12 * HOUR, 1, 1_800, 36_000),
        (s + 60 * HOUR, 1, 2_400, 20_000),
    ]
    assert [(r["status"], r["rto_seconds"], r["rpo_seconds"]) for r in runs["postgres"]] == [(0, 7_800, 50_000)]
    assert runs["nextcloud"] == []
    assert "| postgres | " in markdown and "| FAILED | 2.2 h | 13.9 h | NO |" in markdown
    assert "Targets without a drill in the window: nextcloud." in markdown


def test_pbs_usage_and_forecast(figures: dict[str, Any], history: History, markdown: str) -> None:
    stores = {d["name"]: d for d in figures["datastores"]}
    derived = figures["derived"]["datastores"]
    used_now = history.main_used_gib + history.main_growth_gib_per_day * (history.end - history.start) / DAY
    assert stores["main"]["slope_per_day"] == pytest.approx(history.main_growth_gib_per_day * GIB, rel=1e-6)
    assert derived["main"]["usage"] == pytest.approx(used_now / history.main_size_gib)
    full_in = (history.main_size_gib - used_now) / history.main_growth_gib_per_day
    assert derived["main"]["days_to_full"] == pytest.approx(full_in, rel=1e-4)
    assert derived["offsite-copy"]["days_to_full"] is None
    assert f"| main | {used_now:.1f} GiB | 1,024.0 GiB | 39.6% | 2.0 GiB | {full_in:.1f} d |" in markdown
    assert "| offsite-copy | 100.0 GiB | 2,048.0 GiB | 4.9% | 0.0 GiB | not filling |" in markdown


PLOTS = ["coverage.png", "alerts.png", "notifications.png", "backups.png", "restore-drills.png", "pbs-datastores.png"]


@pytest.mark.parametrize("name", PLOTS)
def test_plots_are_written_and_linked(made: tuple[Path, str], markdown: str, name: str) -> None:
    out, _ = made
    assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({name})" in markdown
    assert f'<img src="{name}"' in (out / "report.html").read_text()


@pytest.mark.parametrize("password", [None, "wrong"], ids=["no-credentials", "wrong-password"])
def test_prometheus_refusing_the_credentials_is_a_clear_error(
    prometheus: str,
    password: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = []
    if password is not None:
        monkeypatch.setenv("OBS_PROMETHEUS_PASSWORD", password)
        args = ["--user", USER]
    assert main(["--prometheus", prometheus, "--from", "now-1d", "--out", str(tmp_path), *args]) == 1
    assert "refused the credentials (HTTP 401): pass --user NAME" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_the_password_comes_from_the_environment(
    prometheus: str, history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBS_PROMETHEUS_PASSWORD", PASSWORD)
    window = ["--from", str(history.start), "--to", str(history.end)]
    assert main(["--prometheus", prometheus, *window, "--user", USER, "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["mtta"]["acknowledgements"] == len(history.acks)


def test_unreachable_prometheus_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{report_data.free_port()}"
    assert main(["--prometheus", url, "--from", "now-1d", "--out", str(tmp_path)]) == 1
    assert f"cannot reach Prometheus at {url}" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "'yesterday' is not a time"),
        (["--from", "now", "--to", "now-1d"], "--from must be before --to"),
        (["--rpo", "a day"], "is not a duration"),
        (["--coverage-target", "95"], "--coverage-target is a ratio"),
        (["--user", "report"], "--user needs a password"),
        (["--password-file", "/nonexistent"], "--password-file needs --user NAME"),
        (["--user", "report", "--password-file", "/nonexistent"], "cannot read --password-file /nonexistent"),
        (["--ca-file", "/nonexistent.pem"], "--ca-file /nonexistent.pem does not exist"),
    ],
    ids=["bad-time", "reversed", "bad-rpo", "percent-target", "no-password", "no-user", "unreadable", "no-ca"],
)
def test_bad_arguments_say_what_to_write(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OBS_PROMETHEUS_PASSWORD", raising=False)
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-01", 1_790_812_800.0),
        ("2026-10-01T00:00:00Z", 1_790_812_800.0),
        ("1790812800", 1_790_812_800.0),
        ("now", 2_000_000_000.0),
        ("now-30d", 2_000_000_000.0 - 30 * DAY),
    ],
    ids=["date", "iso-utc", "unix", "now", "relative"],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text, now=2_000_000_000.0) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0, 1, 5], 5), ([3, 7, 2, 4], 4 + 2 + 2), ([5, 5, 5], 0), ([9], 0)],
    ids=["rising", "reset", "flat", "single"],
)
def test_counter_increase_handles_resets(values: list[float], expected: float) -> None:
    assert increase([(float(i), v) for i, v in enumerate(values)]) == expected


def test_episodes_split_on_gaps() -> None:
    points = [(t, 1.0) for t in (0.0, 300.0, 600.0, 3_000.0, 3_300.0)]
    assert episodes(points, 300) == [(0.0, 600.0), (3_000.0, 3_300.0)]


class CannedPrometheus:
    """Answers range queries from a table (for the paths a backfilled Prometheus does not take)."""

    url = "http://canned"

    def __init__(self, answers: dict[str, list[Series]]) -> None:
        self.answers = answers

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        return self.answers.get(query, [])


def test_coverage_falls_back_to_up_without_the_recording_rule() -> None:
    from_up = [Series({}, [(0.0, 1.0), (300.0, 0.5)])]
    window = Window(0.0, 300.0, 300.0)
    report = build(CannedPrometheus({COVERAGE_FROM_UP: from_up}), window, Budgets(), log=io.StringIO())
    assert report.coverage.query == "sum(up) / count(up)"
    assert (report.coverage.mean, report.coverage.time_at_target) == (0.75, 0.5)


def test_a_prometheus_without_data_still_gets_a_report(tmp_path: Path) -> None:
    report = build(CannedPrometheus({}), Window(0.0, DAY, 300.0), Budgets(), log=io.StringIO())
    written = render.write(report, tmp_path)
    assert [p.name for p in written] == ["report.md", "report.html"]  # no plot without data
    text = (tmp_path / "report.md").read_text()
    assert "| Backups within RPO | every guest, RPO 24.0 h | 0 of 0 guests | n/a |" in text
    assert "(no data in this window)" in text


@pytest.mark.parametrize(("days", "step"), [(3, 300), (30, 300), (38, 300), (60, 480), (365, 2_880)], ids=str)
def test_default_step_stays_within_the_lookback_and_the_point_limit(days: int, step: int) -> None:
    assert default_step(0, days * DAY) == step
    assert days * DAY / step <= 11_000
