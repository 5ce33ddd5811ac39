"""One device living through time: a small state machine over its SIM, network and quota.

The SIM goes issued → assigned → factory test → activated ⇄ suspended → deleted. While
activated, the device attaches to a network (Update location, Update GPRS location), opens
data sessions (Create PDP Context) and closes them with their volume (Delete PDP Context),
roams across operators and borders, goes offline (purges), sends SMS and uses up quotas.
Each ``step(now)`` returns the events of one happening and sets ``next_ms``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from herald.simulate import records as r
from herald.simulate.fleet import Device
from herald.simulate.geo import NEIGHBOURS, Operator, operators_in
from herald.simulate.usage import sends_usage, sms_record, usage_record
from herald.store.usage_records import DATA
from herald.timefmt import format_ms

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
RATS = (("E_UTRAN", 6), ("UTRAN", 1), ("GERAN", 2))
ACTIVATED, SUSPENDED, FACTORY_TEST = (1, "ACTIVATED"), (2, "SUSPENDED"), (4, "FACTORY TEST")
EXHAUSTED = "quota volume of endpoint is exhausted and defined action is to block data traffic"
CUSTOM_CODES = (
    (10001, "Battery below 10 %", "battery"),
    (10002, "Device left its geofence", "geofence"),
    (10003, "Tamper switch opened", "tamper"),
)


@dataclass(slots=True)
class Session:
    pdp_context_id: int
    operator: Operator
    created_ms: int
    ue_ip: str


class DeviceLife:
    """The state of one device and the rules of what may happen next."""

    def __init__(
        self,
        device: Device,
        rng: random.Random,
        start_ms: int,
        *,
        new: bool,
        usage: list[dict[str, Any]] | None = None,
    ) -> None:
        self.device = device
        self.rng = rng
        # where its usage records go (None: it sends none)
        self.usage = usage if usage is not None and sends_usage(device) else None
        self.status = "new" if new else "activated"
        self.operator: Operator | None = None
        self.session: Session | None = None
        self.rat = rng.choice(RATS)
        self.data_quota_mb = rng.choice((50.0, 100.0, 250.0, 500.0))
        self.data_left_mb = self.data_quota_mb * (1.0 if new else rng.uniform(0.2, 1.0))
        self.data_warned = False
        self.has_quota = True
        self.quota_expires_ms = start_ms + rng.randint(1, 30) * DAY
        self.refill_at: int | None = None
        self.sms_quota = 100
        self.sms_left = self.sms_quota if new else rng.randint(10, self.sms_quota)
        self.test_sessions = 0
        self._at = start_ms
        self.next_ms: int | None = start_ms + rng.randint(0, 2 * HOUR)

    # -- the step -------------------------------------------------------------
    def step(self, now: int) -> list[dict[str, Any]]:
        """The events of what happens at ``now``; sets ``next_ms`` (None: nothing ever again)."""
        self._at = now
        events: list[dict[str, Any]] = []
        handler = {
            "new": self._issue,
            "issued": self._assign,
            "assigned": self._start_factory_test,
            "factory_test": self._factory_test,
            "activated": self._activated,
            "suspended": self._suspended,
        }[self.status]
        delay = handler(events)
        self.next_ms = None if self.status == "deleted" else self._at + max(delay, 1000)
        return events

    def _tick(self, low_ms: int = 200, high_ms: int = 4000) -> int:
        """A moment a little after the previous event of this step."""
        self._at += self.rng.randint(low_ms, high_ms)
        return self._at

    def _wait(self, mean_ms: float) -> int:
        return int(self.rng.expovariate(1 / mean_ms))

    # -- SIM lifecycle ----------------------------------------------------------
    def _issue(self, events: list[dict[str, Any]]) -> int:
        events.append(r.sim_status(44, self.device, self._at, "SIM issued to organisation."))
        self.status = "issued"
        return self.rng.randint(1, 30) * MINUTE

    def _assign(self, events: list[dict[str, Any]]) -> int:
        name = self.device.name
        events.append(r.sim_status(51, self.device, self._at, f"SIM assigned to endpoint {name}."))
        self.status = "assigned"
        return self._wait(3 * HOUR)

    def _start_factory_test(self, events: list[dict[str, Any]]) -> int:
        detail = r.transition((0, "ISSUED"), FACTORY_TEST, "SIM assigned to a factory test.")
        events.append(
            r.sim_status(
                45,
                self.device,
                self._at,
                "Status of SIM changed from 'Issued' to 'Factory Test'",
                **detail,
            )
        )
        self.status = "factory_test"
        return self.rng.randint(1, 20) * MINUTE

    def _factory_test(self, events: list[dict[str, Any]]) -> int:
        if self.operator is None:
            self._attach(events, self._home_operator())
            return self.rng.randint(1, 5) * MINUTE
        if self.session is None and self.test_sessions == 0:
            self._open_session(events)
            return self.rng.randint(1, 10) * MINUTE
        if self.session is not None:
            self._close_session(events, volume_mb=self.rng.uniform(0.05, 0.5), quota=False)
            self.test_sessions += 1
            return self.rng.randint(1, 30) * MINUTE
        detail = r.transition(FACTORY_TEST, ACTIVATED, "SIM reached factory test volume.")
        events.append(
            r.sim_status(
                8,
                self.device,
                self._at,
                "SIM activated after factory test volume reached.",
                source=r.POLICY,
                **detail,
            )
        )
        self.status = "activated"
        self._assign_data_quota(events)
        self._assign_sms_quota(events)
        return self._wait(30 * MINUTE)

    def _suspend(self, events: list[dict[str, Any]]) -> int:
        detail = r.transition(ACTIVATED, SUSPENDED, "Suspended through the API.")
        events.append(
            r.sim_status(
                9,
                self.device,
                self._at,
                "Status of SIM changed from 'Activated' to 'Suspended'",
                **detail,
            )
        )
        self.status = "suspended"
        return self._wait(2 * HOUR)

    def _suspended(self, events: list[dict[str, Any]]) -> int:
        if self.operator is not None and self.rng.random() < 0.6:
            events.append(r.rejected_session(self.device, self._at, "SIM is not activated"))
            return self._wait(HOUR)
        detail = r.transition(SUSPENDED, ACTIVATED, "Activated through the API.")
        events.append(
            r.sim_status(
                8,
                self.device,
                self._at,
                "Status of SIM changed from 'Suspended' to 'Activated'",
                **detail,
            )
        )
        self.status = "activated"
        return self._wait(20 * MINUTE)

    def _delete(self, events: list[dict[str, Any]]) -> int:
        if self.operator is not None:
            events.append(r.purge(self.device, self._at, gprs=True))
            events.append(r.purge(self.device, self._tick(), gprs=False))
            self.operator = None
        events.append(r.sim_status(10, self.device, self._tick(), "SIM deleted."))
        events.append(r.sim_status(50, self.device, self._tick(), "SIM released."))
        self.status = "deleted"
        return 0

    # -- an activated device ------------------------------------------------------
    def _activated(self, events: list[dict[str, Any]]) -> int:
        if self.session is not None:
            self._close_session(events, volume_mb=self.rng.expovariate(1 / 0.6), quota=True)
            return self._wait(40 * MINUTE)
        if self.refill_at is not None and self._at >= self.refill_at:
            self._assign_data_quota(events)
            return self._wait(10 * MINUTE)
        if self._at >= self.quota_expires_ms and self.refill_at is None:
            events.append(
                r.quota_event(60, self.device, self._at, "Data quota expired.", volume=0.0)
            )
            self.data_left_mb = 0.0
            self.has_quota = False
            self.refill_at = self._at + self.rng.randint(1, 12) * HOUR
            return self._wait(30 * MINUTE)
        if self.operator is None:
            self._attach(events, self._home_operator())
            return self.rng.randint(1, 10) * MINUTE
        return self._activity(events)

    def _activity(self, events: list[dict[str, Any]]) -> int:
        roll = self.rng.random()
        if roll < 0.60:
            if self.data_left_mb <= 0:
                reason = EXHAUSTED if self.has_quota else "endpoint has no quota"
                events.append(r.rejected_session(self.device, self._at, reason))
                return self._wait(2 * HOUR)
            self._open_session(events)
            return self._wait(15 * MINUTE)
        if roll < 0.74:
            events.append(
                r.update_gprs_location(self.device, self.operator_now, self._at, self.rat[0])
            )
            return self._wait(45 * MINUTE)
        if roll < 0.80:
            self._roam(events)
            return self._wait(20 * MINUTE)
        if roll < 0.85:
            events.append(r.purge(self.device, self._at, gprs=True))
            events.append(r.purge(self.device, self._tick(), gprs=False))
            self.operator = None
            return self._wait(6 * HOUR)
        if roll < 0.95:
            self._sms(events)
            return self._wait(40 * MINUTE)
        if roll < 0.9995:
            code, text, key = self.rng.choice(CUSTOM_CODES)
            events.append(
                r.event(
                    code,
                    self._at,
                    self.device.organisation,
                    severity=r.WARN,
                    source=r.API,
                    device=self.device,
                    description=text,
                    detail={key: self.rng.randint(1, 99)},
                )
            )
            return self._wait(40 * MINUTE)
        if roll < 0.99997:  # a SIM is suspended about once a quarter, deleted once in years
            return self._suspend(events)
        return self._delete(events)

    @property
    def operator_now(self) -> Operator:
        assert self.operator is not None
        return self.operator

    # -- network -------------------------------------------------------------------
    def _home_operator(self) -> Operator:
        return self.rng.choice(operators_in(self.device.home))

    def _attach(self, events: list[dict[str, Any]], operator: Operator) -> None:
        self.operator = operator
        events.append(r.update_location(self.device, operator, self._at))
        events.append(r.update_gprs_location(self.device, operator, self._tick(), self.rat[0]))

    def _roam(self, events: list[dict[str, Any]]) -> None:
        country = self.operator_now.country.iso_code
        if self.rng.random() < 0.5:
            country = self.rng.choice(NEIGHBOURS[country])
        choices = [op for op in operators_in(country) if op != self.operator] or [self.operator_now]
        events.append(r.purge(self.device, self._at, gprs=True))
        self._attach_after_purge(events, self.rng.choice(choices))

    def _attach_after_purge(self, events: list[dict[str, Any]], operator: Operator) -> None:
        self.operator = operator
        events.append(r.update_location(self.device, operator, self._tick()))
        events.append(r.update_gprs_location(self.device, operator, self._tick(), self.rat[0]))

    def _open_session(self, events: list[dict[str, Any]]) -> None:
        operator = self.operator_now
        index = self.device.index
        self.session = Session(
            pdp_context_id=self.rng.randint(10_000_000, 99_999_999),
            operator=operator,
            created_ms=self._at,
            ue_ip=f"100.{64 + index % 64}.{(index >> 8) & 255}.{index & 255}",
        )
        events.append(
            r.event(
                3,
                self._at,
                self.device.organisation,
                severity=r.INFO,
                source=r.NETWORK,
                device=self.device,
                description="New PDP Context successfully activated with SGSN "
                f"CP={self._sgsn_ip(1)}, DP={self._sgsn_ip(2)}.",
                detail=r.operator_detail(operator, pdp_context=self._pdp_context()),
            )
        )

    def _close_session(
        self, events: list[dict[str, Any]], *, volume_mb: float, quota: bool
    ) -> None:
        session = self.session
        assert session is not None
        rx = round(volume_mb * self.rng.uniform(0.5, 0.8), 6)
        tx = round(volume_mb - rx, 6)
        volume = {"total": round(rx + tx, 6), "rx": rx, "tx": tx}
        events.append(
            r.event(
                5,
                self._at,
                self.device.organisation,
                severity=r.INFO,
                source=r.NETWORK,
                device=self.device,
                description="PDP Context deleted.",
                detail=r.operator_detail(
                    session.operator, volume=volume, pdp_context=self._pdp_context()
                ),
            )
        )
        if self.usage is not None:
            self.usage.append(usage_record(self.device, DATA, session.created_ms, self._at, volume))
        self.session = None
        if quota:
            self._use_data(volume["total"], events)

    def _pdp_context(self) -> dict[str, Any]:
        session = self.session
        assert session is not None
        operator = session.operator
        return {
            "pdp_context_id": session.pdp_context_id,
            "tunnel_created": format_ms(session.created_ms)[:19],
            "gtp_version": 2 if self.rat[0] == "E_UTRAN" else 1,
            "rat_type": self.rat[1],
            "apn": "em",
            "nsapi": 5,
            "region": "eu-west-1",
            "ue_ip_address": session.ue_ip,
            "sgsn_control_plane_ip_address": self._sgsn_ip(1),
            "sgsn_data_plane_ip_address": self._sgsn_ip(2),
            "mcc": operator.country.mcc,
            "mnc": operator.mnc,
            "operator_id": str(operator.id),
            "imsi": self.device.imsi,
        }

    def _sgsn_ip(self, plane: int) -> str:
        operator = self.operator_now if self.session is None else self.session.operator
        return f"172.{16 + operator.id % 16}.{operator.id % 256}.{plane}"

    # -- quotas and SMS --------------------------------------------------------------
    def _assign_data_quota(self, events: list[dict[str, Any]]) -> None:
        self.data_left_mb = self.data_quota_mb
        self.data_warned = False
        self.has_quota = True
        self.refill_at = None
        self.quota_expires_ms = self._at + 30 * DAY
        expiry = format_ms(self.quota_expires_ms)
        events.append(
            r.sim_status(
                56,
                self.device,
                self._tick(),
                f"Data quota assigned with volume of {self.data_quota_mb:.6f} MB without daily "
                f"refill until {expiry} and action on exhaustion set to blocking.",
                volume=self.data_quota_mb,
                expiry_date=expiry,
                threshold_percentage=20,
                action_on_exhaustion={"id": 1, "description": "Block"},
            )
        )

    def _assign_sms_quota(self, events: list[dict[str, Any]]) -> None:
        self.sms_left = self.sms_quota
        events.append(
            r.sim_status(
                58,
                self.device,
                self._tick(),
                f"SMS quota assigned with volume of {self.sms_quota} SMS. "
                "On exhaustion, the SMS service will be blocked.",
                volume=self.sms_quota,
                threshold_percentage=20,
            )
        )

    def _use_data(self, used_mb: float, events: list[dict[str, Any]]) -> None:
        before = self.data_left_mb
        self.data_left_mb = max(0.0, before - used_mb)
        threshold = self.data_quota_mb * 0.2
        if not self.data_warned and before > threshold >= self.data_left_mb:
            self.data_warned = True
            events.append(
                r.quota_event(
                    18,
                    self.device,
                    self._tick(),
                    "Quota threshold reached: 20 % of the data quota left.",
                    volume=round(self.data_left_mb, 6),
                )
            )
        if before > 0 >= self.data_left_mb:
            events.append(
                r.quota_event(
                    19,
                    self.device,
                    self._tick(),
                    "Quota used up: data service blocked.",
                    volume=0.0,
                )
            )
            self.refill_at = self._at + self.rng.randint(2, 24) * HOUR

    def _sms(self, events: list[dict[str, Any]]) -> None:
        if self.sms_left <= 0:
            self._assign_sms_quota(events)
            return
        self.sms_left -= 1
        if self.usage is not None:
            self.usage.append(sms_record(self.device, self._at))
        sms = {"destination": "4917012345678", "length": self.rng.randint(8, 160)}
        for type_id, text in ((1009, "SMS attempted."), (1010, "SMS delivered.")):
            at = self._at if type_id == 1009 else self._tick(500, 9000)
            events.append(
                r.event(
                    type_id,
                    at,
                    self.device.organisation,
                    severity=r.INFO,
                    source=r.NETWORK,
                    device=self.device,
                    description=text,
                    detail=sms,
                )
            )
        if self.sms_left == self.sms_quota // 5:
            events.append(
                r.quota_event(20, self.device, self._tick(), "SMS quota threshold reached.")
            )
        if self.sms_left == 0:
            events.append(r.quota_event(21, self.device, self._tick(), "SMS quota used up."))
