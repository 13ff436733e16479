"""Declares, under a component, the pulumi-command resources that install services on one host:
packages -> layout -> all plain files and all secrets staged by one command each (stdin) -> one
validate/swap/reload step per service. Used by MonitoringHost and HostAgents; the scripts come from
scripts.py, so the host test runs the very same commands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pulumi
from pulumi_command import remote

from components import ssh
from components.config import StackConfig
from components.monitoring import scripts, services
from components.render import HostFile, SecretFile

Resolver = Callable[[SecretFile], pulumi.Output[str]]


@dataclass(frozen=True)
class InstallTarget:
    """One host: how to reach it and what to put on it."""

    name: str
    ip: str
    user: str
    connection: remote.ConnectionArgs
    files: tuple[HostFile, ...]
    secrets: tuple[SecretFile, ...] = ()
    only: tuple[str, ...] = services.ORDER
    identity: pulumi.Input[str] | None = None
    # An LXC guest: SSH reaches its PVE node, every script runs in the container by `pct exec`.
    container: int | None = None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def install(
    parent: pulumi.Resource,
    config: StackConfig,
    target: InstallTarget,
    resolve: Resolver,
    depends_on: Sequence[pulumi.Resource] = (),
) -> list[remote.Command]:
    """Declare every command for ``target``; returns the per-service apply steps (in order)."""
    specs = [
        replace(s, units_manifest=scripts.units_manifest(target.name)) if s.name == "files" else s
        for s in services.specs(config, target.ip, target.files, target.secrets, only=target.only)
    ]
    steps = _Steps(parent, target)
    layout_step = steps.prepare(config, specs, depends_on)
    staged, secret_digests = steps.stage(specs, resolve, layout_step)
    return steps.apply(specs, layout_step, staged, secret_digests)


def install_files(
    parent: pulumi.Resource,
    config: StackConfig,
    target: InstallTarget,
    depends_on: Sequence[pulumi.Resource] = (),
) -> remote.Command:
    """The same path for plain files alone (the PBS collector, a vzdump hook, a canary): staged,
    shell scripts checked, swapped, systemd reloaded and timers enabled. Returns the apply step."""

    def no_secrets(secret: SecretFile) -> pulumi.Output[str]:
        raise ValueError(f"{secret.path}: plain-file installs carry no secrets")

    only_files = replace(target, secrets=(), only=("files",))
    (applied,) = install(parent, config, only_files, no_secrets, depends_on)
    return applied


class _Steps:
    """The commands of one host, in the order they run: packages, layout, staging, one apply per service."""

    def __init__(self, parent: pulumi.Resource, target: InstallTarget) -> None:
        self.parent, self.target = parent, target
        # Every step re-runs when the host's identity (its SSH host keys) changes: a rebuilt host.
        self.identity: list[Any] = [target.identity] if target.identity is not None else []

    def command(
        self, role: str, script: str, deps: Sequence[pulumi.Resource], manifest: str = "", **kwargs: Any
    ) -> remote.Command:
        extra_secret = kwargs.pop("secret_outputs", [])
        create = scripts.as_root(script, self.target.user, self.target.container)
        return remote.Command(
            f"{self.target.name}-{role}",
            ssh.command_args(self.target.connection, create=f"{manifest}\n{create}" if manifest else create, **kwargs),
            pulumi.ResourceOptions(
                parent=self.parent, depends_on=list(deps), additional_secret_outputs=list(extra_secret)
            ),
        )

    def prepare(
        self, config: StackConfig, specs: Sequence[services.ServiceSpec], depends_on: Sequence[pulumi.Resource]
    ) -> remote.Command:
        """Pinned packages (with Grafana's repository when needed), then users, groups and directories."""
        mon = config.monitoring
        pkgs = services.packages(config, specs)
        repo = (
            scripts.GrafanaRepo(mon.grafana_apt_url, mon.grafana_apt_key_fingerprint)
            if services.GRAFANA_REPO_PACKAGES & set(pkgs)
            else None
        )
        # Files alone (a collector, a hook, a canary) need no packages, and no second apt run
        # beside the agents' on the same host.
        after = list(depends_on)
        if pkgs:
            # A unit whose package is installed for the first time is held until its apply step.
            units = {s.package: s.unit for s in specs if s.package and s.unit}
            script = scripts.packages_script(pkgs, mon.apt_proxy, repo, units, services.release_packages(config, specs))
            after = [self.command("packages", script, depends_on, triggers=self.identity)]
        layout = scripts.layout_script(
            services.directories(specs), self.target.user, scripts.staging_dirs(specs), services.group_members(specs)
        )
        return self.command("layout", layout, after, triggers=self.identity)

    def stage(
        self, specs: Sequence[services.ServiceSpec], resolve: Resolver, after: remote.Command
    ) -> tuple[dict[str, pulumi.Resource], dict[str, pulumi.Input[str]]]:
        """All plain files by one command, all secrets by another (stdin); returns path -> its
        staging step, and path -> secret digest for the secrets."""
        owned = {m.path for spec in specs for m in spec.files}
        plain = {f.path: f.content for f in self.target.files if f.path in owned}
        secrets = [s for s in self.target.secrets if s.path in owned]
        staged: dict[str, pulumi.Resource] = {}
        secret_digests: dict[str, pulumi.Input[str]] = {}
        if plain:
            stage_files = self.command(
                "stage-files",
                scripts.stage_script(secret=False),
                [after],
                stdin=scripts.stage_payload(plain),
                triggers=self.identity,
            )
            staged.update(dict.fromkeys(plain, stage_files))
        if secrets:
            contents = {s.path: resolve(s) for s in secrets}
            payload = pulumi.Output.all(**contents).apply(scripts.stage_payload)
            stage_secrets = self.command(
                "stage-secrets",
                scripts.stage_script(secret=True),
                [after],
                stdin=pulumi.Output.secret(payload),
                triggers=self.identity,
                logging=remote.Logging.NONE,
                secret_outputs=["stdin", "stdout", "stderr"],
            )
            staged.update(dict.fromkeys(contents, stage_secrets))
            # A digest of a secret is kept secret too (it would confirm a guessed value).
            for path, content in contents.items():
                secret_digests[path] = pulumi.Output.secret(content.apply(sha256))
        return staged, secret_digests

    def apply(
        self,
        specs: Sequence[services.ServiceSpec],
        after: remote.Command,
        staged: dict[str, pulumi.Resource],
        secret_digests: dict[str, pulumi.Input[str]],
    ) -> list[remote.Command]:
        """One validate/swap/reload step per service, each after the one before."""
        applied: list[remote.Command] = []
        previous: list[pulumi.Resource] = [after]
        for spec in specs:
            paths = [m.path for m in spec.files]
            # Plain files are named in the script (a readable diff, an in-place update); secrets
            # only by a secret digest in the triggers. These steps have no delete, so a trigger's
            # replacement just runs the apply again.
            step = self.command(
                f"apply-{spec.name.replace('_', '-')}",
                scripts.apply_script(spec),
                [*previous, *dict.fromkeys(staged[p] for p in paths)],
                manifest=ssh.manifest([f for f in self.target.files if f.path in paths]),
                triggers=[*(secret_digests[p] for p in paths if p in secret_digests), *self.identity] or None,
            )
            applied.append(step)
            previous = [step]
        return applied
