"""Who may keep a live stream open.

Open streams are capped per token and per organisation, so one tenant cannot hold the
server's connections. While any stream is open, the credentials behind them are checked
again every ``recheck_seconds`` (each distinct credential once, in one blocking call): a
revoked token or an expired JWT ends its streams with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from herald.auth import AuthError, Principal
from herald.errors import TooMany
from herald.live.feed import Subscription

log = logging.getLogger("herald.stream")
Runner = Callable[..., Awaitable[Any]]
READ_PERMISSION = "event:read"


class StreamLimitReached(TooMany):
    """A new stream would pass a cap; the message names the cap and its setting."""

    title = "Too many live streams"


class StreamGuard:
    """Admits streams under the caps and ends those whose credentials are gone."""

    def __init__(
        self,
        authenticate: Callable[[str], Principal],
        run: Runner,
        *,
        per_token: int,
        per_organisation: int,
        recheck_seconds: float,
    ) -> None:
        self._authenticate = authenticate
        self._run = run
        self._per_token = per_token
        self._per_organisation = per_organisation
        self._recheck = recheck_seconds
        self._held: dict[Subscription, tuple[Principal, str]] = {}
        self._tokens: Counter[int] = Counter()
        self._organisations: Counter[int] = Counter()
        self._task: asyncio.Task[None] | None = None

    def admit(self, subscription: Subscription, principal: Principal, credential: str) -> None:
        """Count a new stream in; raises StreamLimitReached over a cap."""
        if self._tokens[principal.token_id] >= self._per_token:
            raise StreamLimitReached(
                f"this token has {self._per_token} live streams open, the most allowed "
                "per token (HERALD_STREAM_MAX_PER_TOKEN); close one first"
            )
        organisation = None if principal.internal else principal.organisation_id
        if organisation is not None and self._organisations[organisation] >= (
            self._per_organisation
        ):
            raise StreamLimitReached(
                f"this organisation has {self._per_organisation} live streams open, the most "
                "allowed per organisation (HERALD_STREAM_MAX_PER_ORGANISATION); close one first"
            )
        self._held[subscription] = (principal, credential)
        self._tokens[principal.token_id] += 1
        if organisation is not None:
            self._organisations[organisation] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="herald-stream-guard")

    def release(self, subscription: Subscription) -> None:
        """Count a stream out (it ended); idempotent."""
        held = self._held.pop(subscription, None)
        if held is None:
            return
        principal = held[0]
        self._tokens[principal.token_id] -= 1
        if self._tokens[principal.token_id] <= 0:
            del self._tokens[principal.token_id]
        if not principal.internal and principal.organisation_id is not None:
            self._organisations[principal.organisation_id] -= 1
            if self._organisations[principal.organisation_id] <= 0:
                del self._organisations[principal.organisation_id]

    async def close(self) -> None:
        """Stop checking (the app is shutting down)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while self._held:
            await asyncio.sleep(self._recheck)
            credentials = {credential for _, credential in self._held.values()}
            try:
                refused: dict[str, str] = await self._run(self._refused, credentials)
            except Exception:  # the store is away: keep the streams, ask again next round
                log.exception("live stream: checking credentials failed; retrying")
                continue
            for subscription, (_, credential) in list(self._held.items()):
                if credential in refused:
                    subscription.end(refused[credential])
                    self.release(subscription)

    def _refused(self, credentials: Iterable[str]) -> dict[str, str]:
        """Blocking: the credentials no longer good for reading events, with the reason."""
        refused = {}
        for credential in credentials:
            try:
                principal = self._authenticate(credential)
            except AuthError as exc:
                refused[credential] = str(exc)
                continue
            if not principal.can(READ_PERMISSION):
                refused[credential] = f"the token lacks the permission {READ_PERMISSION!r}"
        return refused
