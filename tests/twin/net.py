"""The twin's network: one network namespace per host, all on one bridge in a LAN namespace.

    twin-lan     bridge twin-br (10.213.0.1/24): the "switch"; the APT proxy listens here
    twin-<host>  eth0 (10.213.0.x/24), the other end of its veth pair on twin-br

Nothing is routed to the machine's own network: packets between hosts never leave these
namespaces. The only way out is the APT proxy (:class:`AptProxy`), a process of this machine that
listens inside twin-lan and fetches from the Debian mirror (and tunnels to PyPI), like the apt-cacher a homelab's
isolated VLAN would use (``monitoring.apt_proxy``). The test runner reaches the hosts the way the
operator's machine does, from the LAN: :func:`inside` runs a block in twin-lan's namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

PREFIX = "twin-"
LAN = f"{PREFIX}lan"
BRIDGE = f"{PREFIX}br"
SUBNET = "10.213.0"
GATEWAY = f"{SUBNET}.1"
CLONE_NEWNET = 0x40000000
APT_PROXY_PORT = 3142
# What the proxy forwards to: Debian's mirrors (apt speaks plain HTTP through a proxy), and PyPI
# by CONNECT on 443 (pip's --proxy, prometheus-pve-exporter's hash-pinned wheels).
ALLOWED_UPSTREAMS = frozenset({"deb.debian.org", "security.debian.org"})
ALLOWED_TUNNELS = frozenset({("pypi.org", 443), ("files.pythonhosted.org", 443)})

_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()


class NetError(RuntimeError):
    pass


def ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetError(f"{' '.join(command)}: {result.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise NetError(f"setns: {os.strerror(ctypes.get_errno())}")


@contextlib.contextmanager
def inside(netns: str = LAN) -> Iterator[None]:
    """Run the block's new sockets in ``netns`` (setns moves the calling thread only)."""
    with _setns_lock, open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{netns}") as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


@dataclass(frozen=True)
class Nic:
    host: str
    address: str  # 10.213.0.x

    @property
    def netns(self) -> str:
        return f"{PREFIX}{self.host}"

    @property
    def lan_end(self) -> str:
        return f"tw-{self.host}"[:15]


class Lan:
    """Create the LAN namespace and one namespace per host; :meth:`destroy` removes them all."""

    def __init__(self) -> None:
        self.nics: list[Nic] = []

    def create(self) -> Lan:
        self.destroy_leftovers()
        ip("netns", "add", LAN)
        ip("link", "set", "lo", "up", netns=LAN)
        ip("link", "add", BRIDGE, "type", "bridge", netns=LAN)
        ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE, netns=LAN)
        ip("link", "set", BRIDGE, "up", netns=LAN)
        return self

    def attach(self, host: str, address: str) -> Nic:
        nic = Nic(host, address)
        ip("netns", "add", nic.netns)
        ip("link", "set", "lo", "up", netns=nic.netns)
        ip("link", "add", nic.lan_end, "type", "veth", "peer", "name", "eth0", "netns", nic.netns, netns=LAN)
        ip("link", "set", nic.lan_end, "master", BRIDGE, "up", netns=LAN)
        ip("addr", "add", f"{address}/24", "dev", "eth0", netns=nic.netns)
        ip("link", "set", "eth0", "up", netns=nic.netns)
        ip("route", "add", "default", "via", GATEWAY, netns=nic.netns)
        self.nics.append(nic)
        return nic

    def set_link(self, host: str, up: bool) -> None:
        """Unplug or plug a host's cable (its LAN-side veth end)."""
        ip("link", "set", f"tw-{host}"[:15], "up" if up else "down", netns=LAN)

    @staticmethod
    def destroy_leftovers() -> None:
        """Namespaces of an earlier run that died before its teardown (only this twin's names)."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        for line in listed.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(PREFIX):
                subprocess.run(["ip", "netns", "del", name], check=False)

    def destroy(self) -> None:
        for nic in self.nics:
            subprocess.run(["ip", "netns", "del", nic.netns], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", LAN], check=False)
        self.nics.clear()


class AptProxy:
    """A forward HTTP proxy for apt: listens on the LAN's gateway address inside twin-lan, and
    fetches from Debian's mirror from this machine's namespace. Refuses every other upstream."""

    def __init__(self, address: str = GATEWAY, port: int = APT_PROXY_PORT) -> None:
        with inside(LAN):
            self._server = socket.create_server((address, port), reuse_port=False)
        self.url = f"http://{address}:{port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="twin-apt-proxy", daemon=True)

    def start(self) -> AptProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            request_line, _, rest = head.partition(b"\r\n")
            method, url, version = request_line.decode("latin-1").split(" ", 2)
            if method == "CONNECT":
                self._tunnel(client, url)
                return
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "http" or parts.hostname not in ALLOWED_UPSTREAMS:
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            try:
                upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=60)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            with upstream:
                upstream.sendall(f"{method} {path} {version}\r\n".encode("latin-1") + rest)
                _pump(client, upstream)

    @staticmethod
    def _tunnel(client: socket.socket, authority: str) -> None:
        host, _, port = authority.rpartition(":")
        if (host, int(port or 0)) not in ALLOWED_TUNNELS:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=60)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pump(client, upstream)


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes (apt keeps connections alive and pipelines)."""
    sockets = [a, b]
    while True:
        readable, _, _ = select.select(sockets, [], [], 120)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (b if source is a else a).sendall(data)
