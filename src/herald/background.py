"""The work a process does behind its API: delivery, device state and rules, each a
follower of the log, started together by ``herald serve`` and ``herald worker``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from herald.delivery.worker import in_process as delivery_in_process
from herald.devices.projector import in_process as devices_in_process
from herald.rules.evaluator import in_process as rules_in_process
from herald.services import Services


@contextlib.asynccontextmanager
async def followers_running(services: Services, mode: str = "serve") -> AsyncIterator[None]:
    """Delivery, the device-state projector and the rules evaluator over ``services``
    (each as its settings enable it), stopped on leaving; ``mode``: "serve" (delivery only
    if enabled there) or "worker"."""
    settings = services.settings
    async with (
        delivery_in_process(
            services.store,
            settings,
            services.catalog,
            services.ids,
            services.secret_box,
            services.loops,
            mode=mode,
        ),
        devices_in_process(
            services.store,
            settings.device_state_poll_seconds,
            services.loops,
            enabled=settings.device_state_enabled,
            lease_seconds=settings.device_state_lease_seconds,
            catalog=services.catalog,
            ids=services.ids,
            writer=services.writer,
        ),
        rules_in_process(
            services.store,
            services.catalog,
            services.ids,
            services.loops,
            poll_seconds=settings.rules_poll_seconds,
            max_groups=settings.max_groups_per_rule,
            enabled=settings.rules_enabled,
        ),
    ):
        yield
