"""InternalCa: the stack's own CA (pulumi-tls) and one certificate per host that serves or
pushes over TLS (monitoring hosts and every managed asset), used when no ACME is configured.

Certificates carry the host's name, FQDN and address, serve both as server and client
certificates (Loki requires client certificates), and renew themselves on the first `pulumi up`
within 30 days of expiry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components import aliases
from components.inventory import Inventory

CA_VALIDITY_HOURS = 10 * 365 * 24
HOST_VALIDITY_HOURS = 365 * 24
EARLY_RENEWAL_HOURS = 30 * 24


@dataclass(frozen=True)
class CertHost:
    name: str
    address: str
    dns_names: tuple[str, ...] = ()  # further names it is reached by (a monitoring host's dns_name)


@dataclass(frozen=True)
class InternalCaArgs:
    cluster: str
    domain: str
    hosts: tuple[CertHost, ...]


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


class InternalCa(pulumi.ComponentResource):
    ca_cert: pulumi.Output[str]
    certs: dict[str, pulumi.Output[str]]
    keys: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: InternalCaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "obsstack:monitoring:InternalCa", name, None, aliases.renamed_from("obsstack:monitoring:InternalCa", opts)
        )
        child = pulumi.ResourceOptions(parent=self)
        secret_key = pulumi.ResourceOptions(
            parent=self, additional_secret_outputs=["privateKeyPem", "privateKeyOpenssh"]
        )
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=secret_key)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"obsstack {args.cluster} CA", organization="obsstack"),
            validity_period_hours=CA_VALIDITY_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        self.ca_cert = ca.cert_pem
        self.certs = {}
        self.keys = {}
        for host in args.hosts:
            key = tls.PrivateKey(f"{name}-{host.name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=secret_key)
            dns = list(dict.fromkeys([host.name, f"{host.name}.{args.domain}", *host.dns_names]))
            ips = []
            if _is_ip(host.address):
                ips.append(host.address)
            else:
                dns.append(host.address)
            request = tls.CertRequest(
                f"{name}-{host.name}-csr",
                private_key_pem=key.private_key_pem,
                subject=tls.CertRequestSubjectArgs(common_name=host.name, organization="obsstack"),
                dns_names=dns,
                ip_addresses=ips,
                opts=child,
            )
            cert = tls.LocallySignedCert(
                f"{name}-{host.name}-cert",
                cert_request_pem=request.cert_request_pem,
                ca_cert_pem=ca.cert_pem,
                ca_private_key_pem=ca_key.private_key_pem,
                validity_period_hours=HOST_VALIDITY_HOURS,
                early_renewal_hours=EARLY_RENEWAL_HOURS,
                allowed_uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"],
                opts=child,
            )
            self.certs[host.name] = cert.cert_pem
            self.keys[host.name] = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"caCert": self.ca_cert, "hosts": sorted(self.certs)})


def cert_hosts(inventory: Inventory) -> tuple[CertHost, ...]:
    """Every host that gets a certificate: monitoring hosts and managed assets."""
    monitoring = tuple(CertHost(m.name, m.ip, (m.dns_name,) if m.dns_name else ()) for m in inventory.monitoring)
    return monitoring + tuple(CertHost(a.name, str(a.address)) for a in inventory.managed_hosts)
