"""A real Debian 12 host for tests: a debootstrapped rootfs booted with systemd-nspawn.

The rootfs is built once and cached as a tarball outside the repo (CACHE_DIR); each test run
unpacks a fresh copy, sets up a login user with sudo and an sshd on a free port, and boots it
(`--register=no --keep-unit`: the CI machine's PID 1 is not systemd) either on the host network,
sshd on loopback, or in a network namespace of its own (`private_network`): a veth pair in
10.0.0.0/8, the host's address off loopback, reached from the test's end of the pair as another
machine on the LAN would. The same rootfs can be booted again (`image` + `boot`), so packages
installed on the host network are there inside the namespace, which has no route out.
Everything is torn down afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("OBSSTACK_TEST_CACHE", "/var/cache/obsstack-test"))
SUITE = "bookworm"
MIRROR = os.environ.get("OBSSTACK_TEST_MIRROR", "http://deb.debian.org/debian")
INCLUDE = ("systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "ca-certificates", "curl", "iproute2")
LOGIN_USER = "debian"
BOOT_TIMEOUT = int(os.environ.get("OBSSTACK_TEST_BOOT_TIMEOUT", "90"))


class HostError(RuntimeError):
    pass


def require_tools() -> None:
    missing = [
        tool for tool in ("debootstrap", "systemd-nspawn", "ssh", "sftp", "ssh-keygen") if not shutil.which(tool)
    ]
    if missing:
        raise HostError(
            f"the host test needs {', '.join(missing)}: apt-get install debootstrap systemd-container openssh-client"
        )
    if os.geteuid() != 0:
        raise HostError("the host test needs root (debootstrap and systemd-nspawn)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cached_rootfs() -> Path:
    """The rootfs tarball, built on first use (one builder at a time, others wait)."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} minbase {' '.join(INCLUDE)}".encode()).hexdigest()[:12]
    tarball = CACHE_DIR / f"debian-{SUITE}-{key}.tar"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        build = Path(tempfile.mkdtemp(prefix="obsstack-debootstrap-", dir="/var/tmp"))
        try:
            print(f"building the {SUITE} rootfs (once, cached in {tarball}) ...", flush=True)
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(build), MIRROR],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            # Package caches are not part of the image: installs over SSH fetch for real.
            subprocess.run(["chroot", str(build), "apt-get", "clean"], check=True)
            partial = tarball.with_suffix(".partial")
            with tarfile.open(partial, "w") as tar:
                tar.add(build, arcname=".")
            partial.rename(tarball)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return tarball


@dataclass(frozen=True)
class PrivateNetwork:
    """A network namespace joined to the test's namespace by a veth pair (a /30 in 10.0.0.0/8)."""

    name: str
    outside: str  # the test's end: the "other machine on the LAN"
    inside: str  # the booted host's address

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"


@contextlib.contextmanager
def private_network() -> Iterator[PrivateNetwork]:
    """A fresh namespace; its /30 is derived from the pid so parallel runs do not collide."""
    require_tools()
    if not shutil.which("ip"):
        raise HostError("the private network needs iproute2's `ip`: apt-get install iproute2")
    pid = os.getpid()
    octets = f"10.{(pid >> 14) & 0xFF}.{(pid >> 6) & 0xFF}"
    base = (pid & 0x3F) * 4
    net = PrivateNetwork(f"obsstack-{pid}", f"{octets}.{base + 1}", f"{octets}.{base + 2}")
    outer, inner = f"obs{pid}o", f"obs{pid}i"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", net.name)
    try:
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", net.name)
        ip("addr", "add", f"{net.outside}/30", "dev", outer)
        ip("link", "set", outer, "up")
        ip("-n", net.name, "addr", "add", f"{net.inside}/30", "dev", inner)
        ip("-n", net.name, "link", "set", inner, "up")
        ip("-n", net.name, "link", "set", "lo", "up")
        yield net
    finally:
        subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", net.name], capture_output=True, check=False)


@dataclass
class Image:
    """An unpacked, prepared rootfs and the key its login user accepts."""

    workdir: Path
    root: Path
    key: Path


@dataclass
class DebianHost:
    root: Path
    ssh_port: int
    key: Path
    process: subprocess.Popen[bytes]
    log: Path
    address: str = "127.0.0.1"

    @property
    def user(self) -> str:
        return LOGIN_USER

    def _ssh_base(self) -> list[str]:
        return [
            "-i",
            str(self.key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
        ]

    def ssh(self, command: str, stdin: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        """Run a command line over real SSH as the login user (like pulumi-command does)."""
        return subprocess.run(
            ["ssh", *self._ssh_base(), "-p", str(self.ssh_port), f"{self.user}@{self.address}", command],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def read(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # nspawn asks the container's systemd to power off
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _listen_ssh(root: Path, ssh_port: int, address: str) -> None:
    (root / "etc/ssh/sshd_config.d/obsstack-test.conf").write_text(
        f"Port {ssh_port}\nListenAddress {address}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
    )


def _prepare(root: Path, public_key: str) -> None:
    root.chmod(0o755)  # the build dir was a 0700 mkdtemp; "/" must be traversable by users
    (root / "etc/hostname").write_text("obsstack-test\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 obsstack-test\n")
    subprocess.run(["chroot", str(root), "useradd", "-m", "-s", "/bin/bash", LOGIN_USER], check=True)
    home = root / "home" / LOGIN_USER / ".ssh"
    home.mkdir(mode=0o700)
    (home / "authorized_keys").write_text(public_key)
    subprocess.run(
        ["chroot", str(root), "chown", "-R", f"{LOGIN_USER}:{LOGIN_USER}", f"/home/{LOGIN_USER}/.ssh"], check=True
    )
    (root / "etc/sudoers.d/debian").write_text(f"{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL\n")
    (root / "etc/sudoers.d/debian").chmod(0o440)
    # The container shares the host's network: nothing but our sshd may listen by default.
    for unit in ("getty@tty1.service", "console-getty.service", "systemd-networkd.service"):
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        with contextlib.suppress(FileExistsError):
            (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")


@contextlib.contextmanager
def image() -> Iterator[Image]:
    """A fresh copy of the cached rootfs with the login user, removed afterwards."""
    require_tools()
    tarball = cached_rootfs()
    workdir = Path(tempfile.mkdtemp(prefix="obsstack-host-", dir="/var/tmp"))
    root = workdir / "rootfs"
    root.mkdir()
    try:
        with tarfile.open(tarball) as tar:
            # Our own cached debootstrap output: device nodes and ownership must survive.
            tar.extractall(root, filter="fully_trusted")  # noqa: S202
        key = workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        _prepare(root, (workdir / "id_ed25519.pub").read_text())
        yield Image(workdir, root, key)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def boot(img: Image, network: PrivateNetwork | None = None) -> Iterator[DebianHost]:
    """Boot the image until its sshd answers; power it off afterwards (the rootfs stays)."""
    address = network.inside if network else "127.0.0.1"
    ssh_port = free_port()
    _listen_ssh(img.root, ssh_port, address)
    log = img.workdir / "console.log"
    machine = f"obsstack-{os.getpid()}-{ssh_port}"
    netns = [f"--network-namespace-path={network.path}"] if network else []
    command = ["systemd-nspawn", "-b", "--register=no", "--keep-unit", "--console=passive", *netns]
    with open(log, "wb") as console:
        process = subprocess.Popen(
            [*command, f"--machine={machine}", "-D", str(img.root)],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
        )
    host = DebianHost(root=img.root, ssh_port=ssh_port, key=img.key, process=process, log=log, address=address)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            if process.poll() is not None:
                raise HostError(f"systemd-nspawn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                if host.ssh("true", timeout=10).returncode == 0:
                    break
            if time.monotonic() > deadline:
                raise HostError(f"no SSH on {address}:{ssh_port} after {BOOT_TIMEOUT}s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield host
    finally:
        host.stop()


@contextlib.contextmanager
def booted() -> Iterator[DebianHost]:
    """A fresh host on the host network, sshd on loopback."""
    with image() as img, boot(img) as host:
        yield host
