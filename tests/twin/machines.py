"""The twin's hosts: real Debian 12 systems (the shared debootstrap cache of tests/host/nspawn.py)
booted by systemd-nspawn, each in its own network namespace (tests/twin/net.py).

Each host has sshd on its LAN address and is reached over real SSH from the LAN namespace, as
the operator's machine reaches a homelab: the login user ``debian`` with sudo (monitoring hosts
and guests, ``monitoring.ssh_user``) or root (the PVE node and the PBS host,
``proxmox.ssh_user``). The LXC-like guest is an inventory asset of kind ``lxc``, so it gets the
agents' unprivileged-container hardening; it cannot run in a user namespace here (without systemd
as this machine's PID 1 nspawn gets no delegated cgroup for a user-namespaced systemd). A host may have a data
disk: a loop-mounted ext4 image, mounted where cloud-init mounts the monitoring VM's second disk.
Machine names are ``twin-<name>``: other tests may boot containers on this machine.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.host import nspawn
from tests.twin import net

BOOT_TIMEOUT = 180
# Downloaded .debs, kept between runs: copied into each host's own archive directory before it
# boots (apt does not wait for another apt's lock on a shared one) and collected after the run.
APT_ARCHIVES = nspawn.CACHE_DIR / "twin-apt-archives"
LOGIN_USER = nspawn.LOGIN_USER


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str
    user: str = LOGIN_USER
    data_disk: str | None = None  # where the data disk is mounted inside the host
    data_disk_mb: int = 1024


@dataclass
class TwinHost:
    spec: HostSpec
    root: Path
    key: Path
    log: Path
    image: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    boots: int = 0
    _console: list[object] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def address(self) -> str:
        return self.spec.address

    @property
    def user(self) -> str:
        return self.spec.user

    @property
    def machine(self) -> str:
        return f"{net.PREFIX}{self.name}"

    def ssh(self, command: str, stdin: str | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        """A command line over real SSH from the LAN, as the login user."""
        argv = ["ip", "netns", "exec", net.LAN, "ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=5", f"{self.user}@{self.address}", command]  # fmt: skip
        return subprocess.run(argv, input=stdin or "", capture_output=True, text=True, timeout=timeout, check=False)

    def root_ssh(self, command: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        runner = "bash -c" if self.user == "root" else "sudo -n bash -c"
        return self.ssh(f"{runner} {shlex.quote(command)}", timeout=timeout)

    # -- lifecycle -------------------------------------------------------------------------------
    def boot(self) -> None:
        if self.image is not None:
            self._mount_data_disk()
        argv = ["systemd-nspawn", "-b", "--register=no", "--keep-unit", "--console=passive",
                f"--machine={self.machine}", f"--network-namespace-path=/run/netns/{net.PREFIX}{self.name}",
                "-D", str(self.root)]  # fmt: skip
        console = open(self.log, "ab")  # noqa: SIM115 - nspawn writes to it for the host's life
        self._console = [console]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
        self.boots += 1

    def wait_ssh(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        last = ""
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise nspawn.HostError(f"{self.machine} exited with {self.process.returncode}:\n{self.tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                attempt = self.ssh("true", timeout=10)
                if attempt.returncode == 0:
                    return
                last = attempt.stderr.strip()
            if time.monotonic() > deadline:
                raise nspawn.HostError(
                    f"no SSH on {self.address} after {BOOT_TIMEOUT}s (last ssh: {last or 'timed out'}):\n"
                    f"{self.inside('systemctl', 'status', 'ssh', '--no-pager')}\n{self.inside('ss', '-ltn')}"
                )
            time.sleep(1)

    def inside(self, *argv: str) -> str:
        """A command run in the host's namespaces from this machine (for diagnostics: no SSH needed)."""
        assert self.process is not None
        init = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False)
        if not init.stdout.split():
            return f"{self.machine}: no init process"
        run = subprocess.run(
            ["nsenter", "-t", init.stdout.split()[0], "-m", "-u", "-i", "-n", "-p", *argv],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return (run.stdout + run.stderr).strip()

    def power_off(self, timeout: int = 60) -> None:
        """Like `qm shutdown`: the guest's systemd powers off, its data stays. A shutdown that
        hangs ends like a crash: the container's init (nspawn's child, its PID 1) is SIGKILLed,
        which ends every process in it; SIGKILL to nspawn itself would leave them running."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                children = subprocess.run(
                    ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
                ).stdout.split()
                for pid in children:
                    subprocess.run(["kill", "-KILL", pid], check=False)
                self.process.wait(timeout=30)
        for console in self._console:
            console.close()  # type: ignore[attr-defined]
        self._console = []
        if self.image is not None:
            subprocess.run(["umount", str(self.data_mountpoint)], check=False)

    def crash(self) -> None:
        """A host that dies at once (power cut, kernel panic): its init and every process in it
        SIGKILLed, no shutdown; its data disk is unmounted afterwards, as a reboot finds it."""
        if self.process is not None and self.process.poll() is None:
            children = subprocess.run(
                ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in children:
                subprocess.run(["kill", "-KILL", pid], check=False)
        self.power_off(timeout=30)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    @property
    def data_mountpoint(self) -> Path:
        assert self.spec.data_disk is not None
        return self.root / self.spec.data_disk.lstrip("/")

    def _mount_data_disk(self) -> None:
        self.data_mountpoint.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-o", "loop", str(self.image), str(self.data_mountpoint)], check=True)


def _pem_blocks(text: str) -> list[str]:
    return [f"{_PEM_BEGIN}{b.split(_PEM_END)[0]}{_PEM_END}\n" for b in text.split(_PEM_BEGIN)[1:] if _PEM_END in b]


_PEM_BEGIN, _PEM_END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
RUNNER_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def trust(root: Path, extra_cas: tuple[str, ...]) -> None:
    """The host trusts what this machine trusts beyond Debian's set (a TLS-inspecting egress
    proxy's CA, as a homelab behind one has installed) and the twin's own CA (the fake PVE API's
    certificate): local CAs in /usr/local/share/ca-certificates, then update-ca-certificates."""
    shipped = set(_pem_blocks((root / "etc/ssl/certs/ca-certificates.crt").read_text()))
    runner = [b for b in _pem_blocks(RUNNER_BUNDLE.read_text()) if b not in shipped] if RUNNER_BUNDLE.exists() else []
    local = root / "usr/local/share/ca-certificates"
    local.mkdir(parents=True, exist_ok=True)
    for i, pem in enumerate([*runner, *extra_cas]):
        (local / f"twin-{i}.crt").write_text(pem)
    subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True, capture_output=True)


def prepare(spec: HostSpec, workdir: Path, tarball: Path, public_key: str, extra_cas: tuple[str, ...] = ()) -> TwinHost:
    """Unpack the cached rootfs for one host and set its identity, sshd, login user and trust."""
    root = workdir / spec.name / "rootfs"
    root.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="fully_trusted")  # noqa: S202 - our own cached debootstrap
    root.chmod(0o755)
    (root / "etc/hostname").write_text(f"{spec.name}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{spec.address} {spec.name}\n")
    (root / "etc/ssh/sshd_config.d/twin.conf").write_text(
        f"ListenAddress {spec.address}\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n"
    )
    (root / "etc/resolv.conf").write_text("# no resolver on the twin's LAN: apt goes through the proxy\n")
    for home, owner in (("root", "root"), (f"home/{LOGIN_USER}", LOGIN_USER)):
        if owner != "root":
            subprocess.run(["chroot", str(root), "useradd", "-m", "-s", "/bin/bash", owner], check=True)
        ssh_dir = root / home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(public_key)
        subprocess.run(["chroot", str(root), "chown", "-R", f"{owner}:{owner}", f"/{home}/.ssh"], check=True)
    (root / "etc/sudoers.d/debian").write_text(f"{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL\n")
    (root / "etc/sudoers.d/debian").chmod(0o440)
    for unit in ("getty@tty1.service", "console-getty.service", "systemd-networkd.service",
                 "systemd-resolved.service", "apt-daily.timer", "apt-daily-upgrade.timer"):  # fmt: skip
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        with contextlib.suppress(FileExistsError):
            (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
    for deb in APT_ARCHIVES.glob("*.deb"):
        shutil.copy2(deb, root / "var/cache/apt/archives" / deb.name)
    trust(root, extra_cas)
    host = TwinHost(spec=spec, root=root, key=workdir / "id_ed25519", log=workdir / spec.name / "console.log")
    if spec.data_disk is not None:
        host.image = workdir / spec.name / "data.img"
        subprocess.run(["truncate", "-s", f"{spec.data_disk_mb}M", str(host.image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(host.image)], check=True)
    return host


class Machines:
    """All hosts of the twin: unpacked from the shared cache, booted in parallel."""

    def __init__(self, specs: list[HostSpec]) -> None:
        self.specs = specs
        self.workdir = Path(tempfile.mkdtemp(prefix="obsstack-twin-", dir="/var/tmp"))
        self.hosts: dict[str, TwinHost] = {}

    def create(self, extra_cas: tuple[str, ...] = ()) -> Machines:
        nspawn.require_tools()
        (APT_ARCHIVES / "partial").mkdir(parents=True, exist_ok=True)
        tarball = nspawn.cached_rootfs()
        key = self.workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        public = (self.workdir / "id_ed25519.pub").read_text()
        for spec in self.specs:
            self.hosts[spec.name] = prepare(spec, self.workdir, tarball, public, extra_cas)
        return self

    def boot_all(self) -> None:
        for host in self.hosts.values():
            host.boot()
        for host in self.hosts.values():
            try:
                host.wait_ssh()
            except nspawn.HostError as first:
                # Once seen in CI: a host of six booted at once on 2 cores never answered SSH (the
                # bare rootfs, before any install). Boot it once more, loudly; a second failure stands.
                print(f"twin: {host.name} booted without SSH, booting it once more:\n{first}", flush=True)
                host.power_off()
                host.boot()
                host.wait_ssh()

    def power_off_all(self) -> None:
        for host in self.hosts.values():
            if host.process is not None and host.process.poll() is None:
                host.process.terminate()
        for host in self.hosts.values():
            host.power_off()

    def destroy(self) -> None:
        self.power_off_all()
        for host in self.hosts.values():
            for deb in (host.root / "var/cache/apt/archives").glob("*.deb"):
                if not (APT_ARCHIVES / deb.name).exists():
                    shutil.copy2(deb, APT_ARCHIVES / deb.name)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __getitem__(self, name: str) -> TwinHost:
        return self.hosts[name]
