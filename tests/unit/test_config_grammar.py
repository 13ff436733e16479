"""Values that land in host files are held to the grammar of the file they land in: a value that
would change that file's structure (a newline into an INI or a timer, shell syntax into a user
name, a header into an email) or leak a credential (user:password@ in a URL) is refused with its
YAML path, and the message never echoes a secret."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from components import config as stack_config
from tests.conftest import load_sections

Edit = Callable[[dict[str, Any]], None]


def receiver(s: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in s["alerting"]["receivers"] if r["name"] == name)


CASES: list[tuple[str, Edit, str, str]] = [
    (
        "grafana-admin-newline",
        lambda s: s.setdefault("grafana", {}).__setitem__("admin_user", "admin\n[security]\nadmin_user = x"),
        "grafana.admin_user",
        "one line",
    ),
    (
        "canary-schedule-newline",
        lambda s: s["backups"].setdefault("drill", {}).__setitem__("canary_schedule", "01:30\nExecStart=/bin/sh"),
        "backups.drill.canary_schedule",
        "one line",
    ),
    (
        "backup-schedule-garbage",
        lambda s: s["backups"].__setitem__("schedule", "whenever"),
        "backups.schedule",
        "calendar event",
    ),
    (
        "backup-schedule-30-february",
        lambda s: s["backups"].__setitem__("schedule", "*-02-30 02:00"),
        "backups.schedule",
        "never happens",
    ),
    (
        "prune-schedule-empty",
        lambda s: s["pbs"]["datastores"][0].__setitem__("prune_schedule", ""),
        "pbs.datastores[0].prune_schedule",
        "calendar event",
    ),
    (
        "ssh-user-shell",
        lambda s: s["proxmox"].__setitem__("ssh_user", "root; rm -rf /"),
        "proxmox.ssh_user",
        "Unix user",
    ),
    (
        "email-header-injection",
        lambda s: receiver(s, "email-digest").__setitem__("to", ["ops@lab.example.net\nBcc: evil@example.com"]),
        "alerting.receivers[",
        "not an email address",
    ),
    (
        "smtp-from-not-an-address",
        lambda s: s["alerting"].__setitem__("smtp_from", "alerts"),
        "alerting.smtp_from",
        "not an email address",
    ),
    (
        "endpoint-with-credentials",
        lambda s: s["proxmox"].__setitem__("endpoint", "https://root:hunter2secret@pve1.lab.example.net:8006/"),
        "proxmox.endpoint",
        "must not carry credentials",
    ),
    (
        "apt-proxy-with-credentials",
        lambda s: s["monitoring"].__setitem__("apt_proxy", "http://user:hunter2secret@10.0.10.5:3142"),
        "monitoring.apt_proxy",
        "must not carry credentials",
    ),
    (
        "gateway-as-a-name",  # found by tools/fuzz_config: PVE's cloud-init gw takes an address only
        lambda s: s["monitoring"]["hosts"][0].__setitem__("gateway", "router.lab.example.net"),
        "monitoring.hosts[0].gateway",
        "not an IP address",
    ),
    (
        "dns-server-as-a-name",
        lambda s: s["monitoring"]["vm"].__setitem__("dns", ["10.0.30.53-2"]),
        "monitoring.vm.dns[0]",
        "not an IP address",
    ),
    (
        "url-with-a-bare-percent",  # found by tools/fuzz_config: amtool refused the rendered file
        lambda s: s["monitoring"].__setitem__("apt_proxy", "http://10.0.10.5:3142/%x"),
        "monitoring.apt_proxy",
        "no %XX escape",
    ),
    (
        "url-with-a-control-character",  # found by CI's hypothesis examples: amtool refused it
        lambda s: receiver(s, "oncall-secondary").__setitem__("url", "https://oncall.lab.example.net/secondary\x19r"),
        "alerting.receivers[",
        "control character",
    ),
]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda s: s["backups"].__setitem__("schedule", "03:30"), "schedule"),
        (lambda s: receiver(s, "email-digest").__setitem__("to", ["ops+alerts@lab.example.net"]), "to"),
        (lambda s: s["proxmox"].__setitem__("ssh_user", "obs_admin"), "ssh_user"),
    ],
    ids=["time-only", "plain-address", "underscore-user"],
)
def test_ordinary_values_still_pass(edit: Edit, field: str) -> None:
    sections = load_sections()
    edit(sections)
    assert stack_config.validate(sections)


def asset(s: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in s["inventory"]["assets"] if a["name"] == name)


ADDRESSES: list[tuple[str, Edit, str, str]] = [
    (
        "unspecified-address",
        lambda s: asset(s, "pve1").__setitem__("address", "0.0.0.0"),  # noqa: S104 (the value refused)
        "assets[0].address",
        "unspecified",
    ),
    (
        "octet-256",
        lambda s: asset(s, "pve1").__setitem__("address", "10.0.10.256"),
        "assets[0].address",
        "looks like an IPv4",
    ),
    (
        "network-address",
        lambda s: s["monitoring"]["hosts"][0].__setitem__("address", "10.0.20.0/24"),
        "monitoring.hosts[0]",
        "network's own or broadcast",
    ),
    (
        "gateway-outside",
        lambda s: s["monitoring"]["hosts"][0].__setitem__("gateway", "10.9.9.1"),
        "monitoring.hosts[0]",
        "must be another address inside",
    ),
    ("port-true", lambda s: s["pbs"].__setitem__("port", True), "pbs.port", "integer"),
    (
        "tcp-probe-port-99999",
        lambda s: asset(s, "gitea").__setitem__("probes", [{"module": "tcp_connect", "target": "10.0.30.11:99999"}]),
        "probes[0]",
        "port 1..65535",
    ),
    (
        "http-probe-without-host",
        lambda s: asset(s, "gitea").__setitem__("probes", [{"module": "http_2xx", "target": "https:///x"}]),
        "probes[0]",
        "has no host",
    ),
    (
        "empty-bridge",
        lambda s: s["monitoring"]["vm"].__setitem__("bridge", ""),
        "monitoring.vm.bridge",
        "not a valid name",
    ),
    (
        "empty-version",
        lambda s: s["monitoring"].setdefault("versions", {}).__setitem__("loki", ""),
        "versions.loki",
        "at least 1",
    ),
    (
        "smtp-port-70000",
        lambda s: s["alerting"].__setitem__("smtp_smarthost", "smtp.lab.example.net:70000"),
        "smtp_smarthost",
        "1..65535",
    ),
    (
        "smtp-no-port",
        lambda s: s["alerting"].__setitem__("smtp_smarthost", "smtp.lab.example.net"),
        "smtp_smarthost",
        "host:port",
    ),
]


@pytest.mark.parametrize(
    ("edit", "path", "fragment"), [c[1:] for c in CASES + ADDRESSES], ids=[c[0] for c in CASES + ADDRESSES]
)
def test_a_value_that_cannot_work_or_would_change_its_file_is_refused(edit: Edit, path: str, fragment: str) -> None:
    sections = load_sections()
    edit(sections)
    with pytest.raises(stack_config.ConfigError) as caught:
        stack_config.validate(sections)
    message = str(caught.value)
    assert path in message and fragment in message, message
    assert "hunter2secret" not in message  # a rejected credential is never echoed
