"""Application checks inside the restored guest: one bash script per check, retried until it
passes or its timeout runs out, run like every other command (guest agent or ``pct exec``).

The script keeps its own deadline (bash ``$SECONDS``) so the last failure is reported, and every
attempt is bounded by coreutils ``timeout``: a hung probe cannot outlive the check. ``tcp`` opens
bash's ``/dev/tcp/<host>/<port>``; ``http`` asks ``curl`` for the status code (``-w
%{http_code}``, no ``-f``, so a 500 is read as 500); ``command`` runs the argv as given. The guest
needs bash and coreutils, and curl for http checks.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from tools.restore_drill.schema import Check

RETRY_SECONDS = 2
ATTEMPT_SECONDS = 10  # one connect or HTTP request; a command gets what is left of the timeout
KILL_AFTER_SECONDS = 5


@dataclass
class CheckResult:
    name: str
    type: str
    status: str  # passed | failed
    seconds: float
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _attempt(check: Check) -> str:
    """Shell that sets $last and succeeds when the check passes once."""
    if check.type == "tcp":
        target = f"/dev/tcp/{check.host}/{check.port}"
        return (
            f"timeout {ATTEMPT_SECONDS} bash -c {shlex.quote(f'exec 3<>{target}')} 2>/dev/null"
            f" || {{ last={shlex.quote(f'no connection to {check.host}:{check.port}')}; false; }}"
        )
    if check.type == "http":
        curl = f"curl -s -o /dev/null -w '%{{http_code}}' --max-time {ATTEMPT_SECONDS} {shlex.quote(check.url or '')}"
        return f'last="HTTP $({curl})"; [ "$last" = "HTTP {check.expect_status}" ]'
    left = 'timeout "$((deadline > SECONDS ? deadline - SECONDS : 1))"'
    return f'last=$({left} {shlex.join(check.command)} 2>&1) || {{ last="exit $?: $last"; false; }}'


def script(check: Check) -> str:
    return "\n".join(
        [
            f"deadline=$((SECONDS + {int(check.timeout_seconds)}))",
            'last=""',
            "while :; do",
            f'    if {_attempt(check)}; then echo "passed after $SECONDS s"; exit 0; fi',
            '    if [ "$SECONDS" -ge "$deadline" ]; then echo "$last" | tail -n 5 >&2; exit 1; fi',
            f"    sleep {RETRY_SECONDS}",
            "done",
        ]
    )


def argv(check: Check) -> list[str]:
    """The command run in the guest; the outer bound leaves the script time to report."""
    bound = int(check.timeout_seconds) + ATTEMPT_SECONDS + RETRY_SECONDS
    return ["timeout", f"--kill-after={KILL_AFTER_SECONDS}", str(bound), "bash", "-c", script(check)]


def exec_seconds(check: Check) -> float:
    """How long the drill waits for the command: the outer bound plus its kill grace."""
    return check.timeout_seconds + ATTEMPT_SECONDS + RETRY_SECONDS + KILL_AFTER_SECONDS + 5
