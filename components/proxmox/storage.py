"""BackupStorage: the PVE storage entries for PBS and the durable NFS/SMB volumes.

Storage entries that hold backups are ``protect=True`` and ``retain_on_delete=True``: `pulumi
destroy` (or a replacement) can never drop the entry PVE reaches its backups through. Durable data
volumes (Prometheus TSDB, Loki chunks) are retained on delete too: removing the entry from PVE
would orphan the disks on it.

The PBS entry authenticates with an API token (``<token_user>!<token_name>``, DatastoreBackup
only, see docs/proxmox-privileges.md) and encrypts on the client side. The encryption key comes
from the stack's secret config (``pbs.encryption_key_secret``) or, when that is unset, PVE
generates one and it is exported as a secret output: without it the backups cannot be restored,
so keep a copy off the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve
from pulumi_command import remote

from components import aliases, ssh
from components.config import Asset, NfsStorage, PbsSection, ProxmoxSection

SACRED = pulumi.ResourceOptions(protect=True, retain_on_delete=True)


@dataclass(frozen=True)
class BackupStorageArgs:
    proxmox: ProxmoxSection
    pbs: PbsSection
    pbs_address: str
    secrets: dict[str, Any]
    nodes: tuple[Asset, ...]
    ssh_user: str
    ssh_private_key: pulumi.Input[str]


def token_id(pbs: PbsSection) -> str:
    return f"{pbs.token_user}!{pbs.token_name}"


def token_value(secret: str, token: str) -> str:
    """The token's secret: config may hold ``<token id>=<secret>`` (as PBS prints it) or the bare secret."""
    return secret.split("=", 1)[1] if secret.startswith(f"{token}=") else secret


class BackupStorage(pulumi.ComponentResource):
    pbs_storage_id: pulumi.Output[str]
    encryption_key: pulumi.Output[str]
    durable_storage_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: BackupStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "obsstack:proxmox:BackupStorage", name, None, aliases.renamed_from("obsstack:proxmox:BackupStorage", opts)
        )
        # The PBS entry waits for what the component waits for: PBS must have its datastore and
        # token before PVE can add the storage (`pvesm add pbs` connects to it).
        self._after = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        pbs = args.pbs
        token = token_id(pbs)
        key = args.secrets[pbs.encryption_key_secret] if pbs.encryption_key_secret else None
        self.pbs = proxmoxve.storage.Pbs(
            f"{name}-{pbs.storage_id}",
            proxmoxve.storage.PbsArgs(
                resource_id=pbs.storage_id,
                server=args.pbs_address,
                datastore=pbs.datastore,
                username=token,
                password=pulumi.Output.secret(args.secrets[pbs.api_token_secret]).apply(
                    lambda secret: token_value(secret, token)
                ),
                fingerprint=pbs.fingerprint,
                contents=["backup"],
                # The two conflict in the provider whenever both are non-null (bpg's
                # fwprovider/storage/resource_pbs.go: ConflictsWith), so only one is ever set.
                encryption_key=pulumi.Output.secret(key) if key is not None else None,
                generate_encryption_key=True if key is None else None,
            ),
            SACRED.merge(self._after).merge(
                pulumi.ResourceOptions(
                    additional_secret_outputs=["generatedEncryptionKey", "password"],
                    # `password` is RequiresReplace in the provider: a rotated token would replace
                    # this protected entry. The rotation command below writes it in place instead.
                    ignore_changes=["password"],
                )
            ),
        )
        self.password = self._password_rotation(name, args, token)
        self.durable = [self._durable(name, share, args.secrets) for share in args.proxmox.durable_storages]
        self.durable_by_id = {
            share.name: res for share, res in zip(args.proxmox.durable_storages, self.durable, strict=True)
        }

        self.pbs_storage_id = self.pbs.resource_id
        generated = self.pbs.generated_encryption_key
        self.encryption_key = pulumi.Output.secret(key if key is not None else generated)
        self.durable_storage_ids = pulumi.Output.all(*[s.resource_id for s in self.durable])
        self.register_outputs(
            {
                "pbsStorageId": self.pbs_storage_id,
                "encryptionKey": self.encryption_key,
                "durableStorageIds": self.durable_storage_ids,
            }
        )

    def _password_rotation(self, name: str, args: BackupStorageArgs, token: str) -> remote.Command:
        """Keep PVE's copy of the PBS token secret current without replacing the storage entry.

        PVE keeps a PBS storage's password in ``/etc/pve/priv/storage/<id>.pw`` (PVE::Storage::
        PBSPlugin, ``pbs_password_file_name``/``pbs_set_password``: the value and a newline, 0600),
        on the cluster filesystem that every node shares; writing it there is what ``pvesm set
        --password`` does, without the secret on a command line.
        """
        node = args.nodes[0]
        assert node.address is not None  # config validation: PVE nodes have addresses
        pw_file = f"/etc/pve/priv/storage/{args.pbs.storage_id}.pw"
        sudo = "" if args.ssh_user == "root" else "sudo -n "
        new = f"{pw_file}.new"
        write = (
            "set -eu\n"
            f"{sudo}install -d -m 0700 /etc/pve/priv/storage\n"
            f"{sudo}sh -c 'umask 077 && cat > {new} && echo >> {new} && mv -f {new} {pw_file}'\n"
        )
        secret = pulumi.Output.secret(args.secrets[args.pbs.api_token_secret]).apply(
            lambda value: token_value(value, token)
        )
        return remote.Command(
            f"{name}-{args.pbs.storage_id}-password",
            ssh.command_args(
                ssh.connection(node.address, node.ssh_user or args.ssh_user, args.ssh_private_key),
                create=write,
                stdin=secret,
                logging=remote.Logging.NONE,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[self.pbs], additional_secret_outputs=["stdin"]),
        )

    def _durable(
        self, name: str, share: NfsStorage, secrets: dict[str, Any]
    ) -> proxmoxve.storage.Nfs | proxmoxve.storage.Cifs:
        holds_backups = "backup" in share.content
        options = pulumi.ResourceOptions(parent=self, retain_on_delete=True, protect=holds_backups)
        if share.type == "nfs":
            return proxmoxve.storage.Nfs(
                f"{name}-{share.name}",
                proxmoxve.storage.NfsArgs(
                    resource_id=share.name, server=share.server, export=share.export, contents=list(share.content)
                ),
                options,
            )
        assert share.username is not None and share.password_secret is not None  # config validation
        return proxmoxve.storage.Cifs(
            f"{name}-{share.name}",
            proxmoxve.storage.CifsArgs(
                resource_id=share.name,
                server=share.server,
                share=share.export,
                username=share.username,
                password=pulumi.Output.secret(secrets[share.password_secret]),
                contents=list(share.content),
            ),
            options.merge(pulumi.ResourceOptions(additional_secret_outputs=["password"])),
        )
