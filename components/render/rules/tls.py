"""ACME certificates that are not being renewed (monitoring.tls.mode: acme; metrics from the
renewer, components/render/acme.py, through the node exporter's textfile collector).

The renewer starts renewing at ``tls.renew_days`` left, which config validation keeps above
``cert_expiry_days``: a certificate under that threshold means every renewal since has failed
(or none ran), whatever the reason. The expiry counts, not the last run's status: a timer that
stopped running leaves a stale "success" behind.
"""

from __future__ import annotations

from components.config import StackConfig
from components.inventory import Inventory
from components.render.rules.builders import CERT_FOR, Rule, alert, dump


def _not_renewed(config: StackConfig) -> Rule:
    days = config.alerting.thresholds.cert_expiry_days
    return alert(
        config,
        "TLSCertificateNotRenewed",
        f"(obs_tls_cert_not_after_timestamp_seconds - time()) < {days} * 86400",
        hold=CERT_FOR,
        severity="warning",
        service="monitoring",
        summary="ACME certificate {{ $labels.domain }} expires in {{ $value | humanizeDuration }}",
        description=(
            "The ACME certificate of {{ $labels.domain }} (on {{ $labels.instance }}) expires in "
            f"{{{{ $value | humanizeDuration }}}}, under the {days}-day threshold: renewal starts "
            "earlier, so it has been failing. Check obs-acme-renew.service's journal."
        ),
    )


def render(config: StackConfig, inventory: Inventory) -> str:
    return dump("tls", [_not_renewed(config)])
