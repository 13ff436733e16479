"""WebCredentials: the generated basic-auth passwords of the monitoring plane (pulumi-random).

``api`` reads the Prometheus/Alertmanager APIs (Grafana, Prometheus -> Alertmanager, health
checks); ``scrape`` may only read node exporters. Both are secret Outputs, and so are their
bcrypt hashes (they end up in web-config files, never in a rendered plain file).
"""

from __future__ import annotations

import pulumi
import pulumi_random as random

from components import aliases
from components.render.webconfig import WEB_USERS


class WebCredentials(pulumi.ComponentResource):
    passwords: dict[str, pulumi.Output[str]]
    hashes: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "obsstack:monitoring:WebCredentials",
            name,
            None,
            aliases.renamed_from("obsstack:monitoring:WebCredentials", opts),
        )
        child = pulumi.ResourceOptions(parent=self, additional_secret_outputs=["result", "bcryptHash"])
        self.passwords = {}
        self.hashes = {}
        for role in WEB_USERS:
            # No special characters: the value goes into curl's -K config and HTTP basic auth as is.
            password = random.RandomPassword(f"{name}-{role}", length=32, special=False, opts=child)
            self.passwords[role] = pulumi.Output.secret(password.result)
            self.hashes[role] = pulumi.Output.secret(password.bcrypt_hash)
        self.register_outputs({"roles": sorted(WEB_USERS)})
