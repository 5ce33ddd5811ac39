"""One organisation's account living through time: users, VPN routing target, balance.

Users fail to sign in now and then, applications present revoked tokens, the OpenVPN
client re-authenticates, the routing target's IPsec tunnel goes down and comes back
(IKE phase 1, child SA, availability, in that order), and the prepaid balance runs low:
a warning, rarely depletion and the organisation blocked.
"""

from __future__ import annotations

import random
from typing import Any

from herald.simulate import records as r
from herald.simulate.fleet import Organisation

MINUTE = 60_000
HOUR = 60 * MINUTE
_FIRST_NAMES = ("Ana", "Ben", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana")


class AccountLife:
    """The state of one account and what may happen to it next."""

    def __init__(
        self, organisation: Organisation, rng: random.Random, start_ms: int, *, new: bool
    ) -> None:
        self.organisation = organisation
        self.rng = rng
        self.tunnel_up = True
        self.announce_quotas = new
        self.next_ms: int | None = start_ms + rng.randint(0, HOUR)
        self.routing_target = f"rt-{organisation.id}-1"
        slug = organisation.name.lower().replace(" ", "")
        self.users = [
            {
                "id": organisation.id * 1000 + i,
                "name": name,
                "username": f"{name.lower()}@{slug}.example",
            }
            for i, name in enumerate(_FIRST_NAMES[: 2 + organisation.id % 4])
        ]

    def step(self, now: int) -> list[dict[str, Any]]:
        """The events of what happens at ``now``; sets ``next_ms``."""
        events: list[dict[str, Any]] = []
        if self.announce_quotas:
            self.announce_quotas = False
            self._quota_management(events, now)
        elif not self.tunnel_up:
            self._tunnel_back(events, now)
        else:
            self._something(events, now)
        self.next_ms = now + max(int(self.rng.expovariate(1 / (2 * HOUR))), 60_000)
        return events

    def _event(self, type_id: int, at: int, **fields: Any) -> dict[str, Any]:
        return r.event(type_id, at, self.organisation, **fields)

    def _quota_management(self, events: list[dict[str, Any]], now: int) -> None:
        profile = f"(id = {self.organisation.id * 10} - IoT with quota)"
        for offset, (type_id, kind) in enumerate(((52, "Data"), (54, "SMS"))):
            events.append(
                self._event(
                    type_id,
                    now + offset * 1000,
                    severity=r.WARN,
                    source=r.API,
                    description=f"{kind} quota management got enabled for service profile "
                    f"{profile}.",
                )
            )

    def _something(self, events: list[dict[str, Any]], now: int) -> None:
        roll = self.rng.random()
        user = self.rng.choice(self.users)
        ip = f"198.51.100.{self.rng.randint(1, 254)}"
        if roll < 0.35:
            events.append(
                self._event(
                    6,
                    now,
                    severity=r.WARN,
                    source=r.API,
                    user=user,
                    description=f"Failed authentication request from '{user['username']}', "
                    f"Reason: Invalid password from IP {ip}",
                )
            )
        elif roll < 0.50:
            events.append(
                self._event(
                    7,
                    now,
                    severity=r.WARN,
                    source=r.API,
                    user=user,
                    description=f"Failed authentication request with an application token of "
                    f"'{user['username']}', Reason: token revoked, from IP {ip}",
                )
            )
        elif roll < 0.75:
            events.append(
                self._event(
                    30,
                    now,
                    severity=r.INFO,
                    source=r.API,
                    user=user,
                    description="OpenVPN client (re-)authenticated successfully",
                    detail={
                        "region": "eu-west-1",
                        "client": {"public_ip": ip, "version": "2.6.8"},
                        "protocol": "udp",
                    },
                )
            )
        elif roll < 0.90:
            self._tunnel_down(events, now)
        elif roll < 0.985:
            events.append(
                self._event(
                    1033,
                    now,
                    severity=r.WARN,
                    source=r.POLICY,
                    alert=True,
                    description="Account balance below the warning threshold.",
                    detail={"balance": round(self.rng.uniform(5, 50), 2), "threshold": 50.0},
                )
            )
        else:
            self._depleted(events, now)

    def _tunnel_event(
        self, type_id: int, at: int, description: str, severity: int
    ) -> dict[str, Any]:
        return self._event(
            type_id,
            at,
            severity=severity,
            source=r.NETWORK,
            alert=severity > r.INFO,
            description=f"{description} ({self.routing_target})",
            target={"type": "routing_target", "id": self.routing_target},
            detail={"routing_target": self.routing_target, "peer": "203.0.113.10"},
        )

    def _tunnel_down(self, events: list[dict[str, Any]], now: int) -> None:
        self.tunnel_up = False
        events.append(self._tunnel_event(1029, now, "VPN child SA phase 2 down", r.WARN))
        events.append(self._tunnel_event(1027, now + 500, "VPN IKE phase 1 down", r.WARN))
        events.append(self._tunnel_event(1024, now + 1500, "Routing target unavailable", r.WARN))

    def _tunnel_back(self, events: list[dict[str, Any]], now: int) -> None:
        if self.rng.random() < 0.3:
            events.append(
                self._tunnel_event(1032, now, "VPN initiation failed: peer not responding", r.WARN)
            )
            return
        self.tunnel_up = True
        events.append(self._tunnel_event(1030, now, "VPN initiation succeeded", r.INFO))
        events.append(self._tunnel_event(1026, now + 300, "VPN IKE phase 1 up", r.INFO))
        events.append(self._tunnel_event(1028, now + 600, "VPN child SA phase 2 up", r.INFO))
        events.append(self._tunnel_event(1023, now + 900, "Routing target available", r.INFO))

    def _depleted(self, events: list[dict[str, Any]], now: int) -> None:
        events.append(
            self._event(
                1034,
                now,
                severity=r.CRITICAL,
                source=r.POLICY,
                alert=True,
                description="Account balance depleted.",
                detail={"balance": 0.0},
            )
        )
        events.append(
            self._event(
                12,
                now + 2000,
                severity=r.WARN,
                source=r.POLICY,
                alert=True,
                description="Blocking services for organisation, because of insufficient "
                "prepaid balance.",
            )
        )
