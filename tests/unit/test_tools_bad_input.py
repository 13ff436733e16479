"""Every tool takes bad input with a clear message and exit code 2 (1 when a service it needs
fails), never a traceback; run as a user runs them: `python -m tools.X ...` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components.outputs import restore_drill_output

ROOT = Path(__file__).resolve().parents[2]
CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port
SECRET = "tok3n-Sh0uld-N3ver-Sh0w-9f2c"

Setup = Callable[[Path], list[str]]


def _file(tmp: Path, name: str, data: bytes | str) -> Path:
    path = tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _policy(tmp: Path) -> str:
    doc = {
        "max_duration_seconds": 86400,
        "maintenance_max_duration_seconds": 604800,
        "maintenance_windows": [],
        "protected": [{"alertname": "Watchdog"}],
    }
    return str(_file(tmp, "policy.json", json.dumps(doc)))


def _silences(tmp: Path, *args: str) -> list[str]:
    return ["tools.silences", "--alertmanager", CLOSED, "--policy", _policy(tmp), *args]


CREATE = ("create", "--author", "alice", "--comment", "disk swap, ticket OPS-42")
DEEP = "[" * 100_000 + "]" * 100_000

CASES: list[tuple[str, Setup, int, str]] = [
    ("silences-invalid-regex", lambda t: _silences(t, *CREATE, "-m", 'alertname=~"(unclosed"'), 2, "invalid regex"),
    ("silences-bad-matcher", lambda t: _silences(t, *CREATE, "-m", "nonsense"), 2, "is not a matcher"),
    (
        "silences-bad-duration",
        lambda t: _silences(t, *CREATE, "-m", "a=b", "--duration", "forever"),
        2,
        "is not a duration",
    ),
    (
        "silences-missing-ca",
        lambda t: ["tools.silences", "--alertmanager", CLOSED, "--ca-file", str(t / "none.pem"), "list"],
        2,
        "--ca-file",
    ),
    (
        "silences-bad-policy-file",
        lambda t: [
            "tools.silences",
            "--alertmanager",
            CLOSED,
            "--policy",
            str(_file(t, "p.json", "{not json")),
            "audit",
        ],
        2,
        "is not JSON",
    ),
    (
        "silences-policy-wrong-shape",
        lambda t: ["tools.silences", "--alertmanager", CLOSED, "--policy", str(_file(t, "p.json", "[1, 2]")), "audit"],
        2,
        "not a silence policy document",
    ),
    (
        "silences-policy-missing",
        lambda t: ["tools.silences", "--alertmanager", CLOSED, "--policy", str(t / "nope.json"), "audit"],
        2,
        "cannot read the policy file",
    ),
    (
        "silences-unknown-stack",
        lambda t: ["tools.silences", "--alertmanager", CLOSED, "--stack", "nosuch", "audit"],
        2,
        "Pulumi.nosuch.yaml",
    ),
    (
        "silences-textfile-dir-is-a-file",
        lambda t: _silences(t, "check", "--textfile-dir", str(_file(t, "f", "x"))),
        2,
        "is a file",
    ),
    ("silences-unreachable", lambda t: _silences(t, "audit"), 1, "cannot reach Alertmanager"),
    (
        "oncall-drill-textfile-dir-is-a-file",
        lambda t: ["tools.oncall_drill", "--alertmanager", CLOSED, "--textfile-dir", str(_file(t, "f", "x"))],
        2,
        "is a file",
    ),
    (
        "oncall-drill-bad-timeout",
        lambda t: ["tools.oncall_drill", "--alertmanager", CLOSED, "--textfile-dir", str(t), "--ack-timeout", "soon"],
        2,
        "is not a duration",
    ),
    (
        "oncall-drill-missing-ca",
        lambda t: [
            "tools.oncall_drill",
            "--alertmanager",
            CLOSED,
            "--ca-file",
            str(t / "x.pem"),
            "--textfile-dir",
            str(t),
        ],
        2,
        "--ca-file",
    ),
    (
        "oncall-drill-unreachable",
        lambda t: ["tools.oncall_drill", "--alertmanager", CLOSED, "--textfile-dir", str(t)],
        1,
        "cannot reach Alertmanager",
    ),
    (
        "restore-drill-outputs-not-utf8",
        lambda t: [
            "tools.restore_drill",
            "--outputs",
            str(_file(t, "o.json", b"\xff\xfe{\x00}\x00")),
            "--all",
            "--dry-run",
        ],
        2,
        "UTF-8",
    ),
    (
        "restore-drill-outputs-deep",
        lambda t: ["tools.restore_drill", "--outputs", str(_file(t, "o.json", DEEP)), "--all", "--dry-run"],
        2,
        "nested",
    ),
    (
        "restore-drill-outputs-list",
        lambda t: ["tools.restore_drill", "--outputs", str(_file(t, "o.json", "[]")), "--all", "--dry-run"],
        2,
        "expected a JSON object",
    ),
    (
        "restore-drill-report-dir-is-a-file",
        lambda t: [
            "tools.restore_drill",
            "--outputs",
            str(_outputs(t)),
            "--all",
            "--report-dir",
            str(_file(t, "f", "x")),
        ],
        2,
        "is a file",
    ),
    (
        "restore-drill-token-file-missing",
        lambda t: [
            "tools.restore_drill",
            "--outputs",
            str(_outputs(t)),
            "--target",
            "gitea",
            "--token-file",
            str(t / "no"),
        ],
        2,
        "--token-file",
    ),
    ("report-from-nan", lambda t: ["tools.report", "--prometheus", CLOSED, "--from", "nan"], 2, "--from"),
    ("report-step-nan", lambda t: ["tools.report", "--prometheus", CLOSED, "--step", "nan"], 2, "--step"),
    ("report-step-zero", lambda t: ["tools.report", "--prometheus", CLOSED, "--step", "0"], 2, "--step"),
    ("report-to-inf", lambda t: ["tools.report", "--prometheus", CLOSED, "--to", "inf"], 2, "--to"),
    (
        "report-missing-ca",
        lambda t: ["tools.report", "--prometheus", CLOSED, "--ca-file", str(t / "x.pem")],
        2,
        "--ca-file",
    ),
    (
        "report-unreachable",
        lambda t: ["tools.report", "--prometheus", CLOSED, "--out", str(t / "r")],
        1,
        "cannot reach",
    ),
    (
        "report-out-is-a-file",
        lambda t: ["tools.report", "--prometheus", CLOSED, "--out", str(_file(t, "f", "x"))],
        2,
        "--out",
    ),
    ("alert-quality-unknown-stack", lambda t: ["tools.alert_quality", "--stack", "nosuch"], 2, "nosuch"),
    ("alert-quality-precision-nan", lambda t: ["tools.alert_quality", "--min-precision", "nan"], 2, "--min-precision"),
    ("alert-quality-recall-2", lambda t: ["tools.alert_quality", "--min-recall", "2"], 2, "--min-recall"),
    (
        "alert-quality-out-is-a-file",
        lambda t: ["tools.alert_quality", "--out", str(_file(t, "f", "x"))],
        2,
        "is a file",
    ),
    ("alert-quality-no-scenarios", lambda t: ["tools.alert_quality", "--scenarios", str(t / "none")], 2, "none"),
    (
        "pr-comment-plan-json-not-json",
        lambda t: ["tools.pr_comment", "--base", str(_plan(t, "base", "{oops")), "--pr", str(_plan(t, "pr", "{}"))],
        2,
        "plan.json",
    ),
    (
        "pr-comment-plan-not-utf8",
        lambda t: ["tools.pr_comment", "--base", str(_plan(t, "base", b"\xff\xfe")), "--pr", str(_plan(t, "pr", "{}"))],
        2,
        "plan.json",
    ),
    ("plan-unknown-stack", lambda t: ["tools.plan", "--stack", "nosuch", "--out", str(t / "o")], 2, "nosuch"),
    (
        "pr-comment-out-is-a-directory",
        lambda t: [
            "tools.pr_comment",
            "--base",
            str(_plan(t, "b", "{}")),
            "--pr",
            str(_plan(t, "p", "{}")),
            "--out",
            str(t),
        ],
        2,
        "is a directory",
    ),
    (
        "silences-textfile-dir-unwritable",
        lambda t: _silences(t, "check", "--textfile-dir", str(_file(t, "f", "x") / "sub")),
        1,
        "cannot write",
    ),
    ("pr-comment-missing-dir", lambda t: ["tools.pr_comment", "--base", str(t / "a"), "--pr", str(t / "b")], 2, "a"),
]


def _outputs(tmp: Path) -> Path:
    """The stack outputs the plan computes for the example stack (restoreDrill only)."""
    config = stack_config.load_file(ROOT / "Pulumi.prod.yaml")
    document = {"restoreDrill": restore_drill_output(config, stack_inventory.build(config))}
    return _file(tmp, "outputs.json", json.dumps(document))


def _plan(tmp: Path, name: str, plan_json: bytes | str) -> Path:
    directory = tmp / name
    directory.mkdir()
    _file(directory, "plan.json", plan_json)
    _file(directory, "plan.md", "# plan\n")
    return directory


@pytest.mark.parametrize(("setup", "code", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(tmp_path: Path, setup: Setup, code: int, fragment: str) -> None:
    result = _run(setup(tmp_path))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert fragment in result.stderr, result.stderr[-2000:]


class _NotAnApi(BaseHTTPRequestHandler):
    """Answers 200 to everything: an HTML page, or JSON of the wrong shape under /api/v2/."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = b'{"status": "success"}' if self.path.startswith("/wrong-shape/") else b"<html>login</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def not_an_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotAnApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


SERVED: list[tuple[str, Callable[[Path, str], list[str]], str]] = [
    ("silences-html-200", lambda t, url: ["tools.silences", "--alertmanager", url, "list"], "without JSON"),
    (
        "silences-wrong-shape",
        lambda t, url: ["tools.silences", "--alertmanager", url + "/wrong-shape", "alerts"],
        "did not answer a list",
    ),
    (
        "oncall-drill-html-200",
        lambda t, url: ["tools.oncall_drill", "--alertmanager", url, "--textfile-dir", str(t), "--ack-timeout", "1s"],
        "answered",
    ),
    ("report-html-200", lambda t, url: ["tools.report", "--prometheus", url, "--out", str(t / "r")], "without JSON"),
]


@pytest.mark.parametrize(("setup", "fragment"), [c[1:] for c in SERVED], ids=[c[0] for c in SERVED])
def test_an_answer_that_is_not_the_api_is_a_clear_error(
    tmp_path: Path, not_an_api: str, setup: Callable[[Path, str], list[str]], fragment: str
) -> None:
    result = _run(setup(tmp_path, not_an_api))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert fragment in result.stderr, result.stderr[-2000:]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
