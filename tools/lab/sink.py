"""A webhook receiver that records (and optionally prints) every Alertmanager notification.

The lab points every receiver of the rendered alertmanager.yml at ``/<receiver name>`` here, so a
notification's path says which receiver the routing chose.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Notification:
    receiver: str
    status: str  # firing | resolved (of the group)
    alerts: tuple[dict[str, Any], ...]
    received_at: float

    @property
    def alertnames(self) -> set[str]:
        return {a["labels"].get("alertname", "") for a in self.alerts}

    def describe(self) -> str:
        names = ", ".join(
            f"{a['labels'].get('alertname')}{{instance={a['labels'].get('instance', '')!r}}}:{a['status']}"
            for a in self.alerts
        )
        return f"{time.strftime('%H:%M:%S', time.localtime(self.received_at))} -> {self.receiver:<18} {names}"


class WebhookSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, echo: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Condition()
        self._notifications: list[Notification] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                sink.record(
                    Notification(
                        receiver=self.path.strip("/"),
                        status=str(body.get("status", "")),
                        alerts=tuple(body.get("alerts", [])),
                        received_at=time.time(),
                    )
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._echo = echo
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, notification: Notification) -> None:
        with self._lock:
            self._notifications.append(notification)
            self._lock.notify_all()
        if self._echo:
            self._echo(notification.describe())

    def notifications(self, alertname: str | None = None) -> list[Notification]:
        with self._lock:
            return [n for n in self._notifications if alertname is None or alertname in n.alertnames]

    def wait_for(self, predicate: Callable[[list[Notification]], bool], timeout: float) -> bool:
        """Block until predicate(all notifications so far) holds, or timeout (False)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self._notifications)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True
