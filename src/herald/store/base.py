"""The Store: a composition root of the event log and one repository per aggregate."""

from __future__ import annotations

from typing import Any, Protocol

from herald.store.devices import Devices
from herald.store.handlers import Handlers
from herald.store.log import EventLog
from herald.store.maintenance import Maintenance
from herald.store.meta import Meta
from herald.store.nodes import Nodes
from herald.store.organisations import Organisations
from herald.store.quarantine import Quarantine
from herald.store.rules import RuleRepository
from herald.store.usage import Usage


class Store(Protocol):
    """An open database: the event log and the repositories over it, each with one SQL
    implementation (the backends supply connections and the SQL that really differs); the
    contract suite in tests/store runs against each backend."""

    log: EventLog[Any]
    organisations: Organisations[Any]
    meta: Meta[Any]
    nodes: Nodes[Any]
    handlers: Handlers[Any]
    quarantine: Quarantine[Any]
    usage: Usage[Any]
    devices: Devices[Any]
    maintenance: Maintenance
    rules: RuleRepository[Any]  # rules and their alert state (issue 35)

    def close(self) -> None:
        """Give the node id back and close the connections."""
