"""Handler secrets sealed at rest (Fernet: AES-128-CBC with HMAC-SHA256), so that a copy of
the database without the key reveals none.

The key comes from ``HERALD_SECRET_KEY`` (comma-separated Fernet keys: the first seals, the
others still open what they sealed, for a rotation) or else from a key file created on first
start beside the admin token (mode 0600). ``reseal`` brings a stored value to the current
key: plaintext secrets written before sealing existed are sealed, those of an older key are
sealed again with the first one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from herald.config import Settings
from herald.store import Store, StoreError
from herald.store.sqlite import sqlite_path

log = logging.getLogger("herald")
SEALED = "fernet:"  # a sealed value's prefix; a handler's plaintext secret starts "whsec_"


class SecretUnavailable(Exception):
    """A sealed secret that none of the configured keys opens."""


class SecretBox:
    """Seals and opens secrets with the first of its keys; opens with any of them."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        try:
            self._keys = [Fernet(key.strip().encode()) for key in keys]
        except ValueError as exc:
            raise ValueError(
                "a key must be 32 url-safe base64-encoded bytes (Fernet.generate_key())"
            ) from exc
        self._all = MultiFernet(self._keys)

    def seal(self, secret: str) -> str:
        return SEALED + self._keys[0].encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        """The secret a stored value holds (a value stored before sealing: as it is)."""
        if not stored.startswith(SEALED):
            return stored
        try:
            return self._all.decrypt(stored.removeprefix(SEALED).encode()).decode()
        except InvalidToken:
            raise SecretUnavailable(
                "a handler secret is sealed with a key this process lacks (HERALD_SECRET_KEY)"
            ) from None

    def reseal(self, stored: str) -> str | None:
        """``stored`` sealed with the first key, or None if it is already (or if no key
        opens it: it is left for a process that has its key)."""
        if not stored.startswith(SEALED):
            return self.seal(stored)
        token = stored.removeprefix(SEALED).encode()
        try:
            self._keys[0].decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            return SEALED + self._all.rotate(token).decode()
        except InvalidToken:
            log.warning("a handler secret is sealed with an unknown key; left as it is")
            return None


def seal_stored_secrets(store: Store, box: SecretBox) -> int:
    """Seal, with the box's first key, every handler secret stored in plaintext or under an
    older key; how many handlers changed (none while the database refuses writes: the next
    start seals them)."""
    try:
        changed = store.handlers.reseal_secrets(box.reseal)
    except StoreError as exc:
        log.warning("cannot seal handler secrets now: %s", exc)
        return 0
    if changed:
        log.info("sealed the secrets of %d event handlers with the current key", changed)
    return changed


def beside_database(settings: Settings, suffix: str) -> Path:
    """A file kept with the database: beside a SQLite file, else in the working directory."""
    url = settings.database_url
    base = sqlite_path(url) if url.startswith("sqlite") else "herald"
    return Path(base + suffix)


def key_file(settings: Settings) -> Path:
    return Path(settings.secret_key_file or beside_database(settings, ".secret-key"))


def load_box(settings: Settings) -> SecretBox:
    """The box of ``HERALD_SECRET_KEY``, or of the key file (created if absent, mode 0600).
    ValueError for a malformed key or a key file that cannot be read or written."""
    if settings.secret_key:
        return SecretBox([key for key in settings.secret_key.split(",") if key.strip()])
    path = key_file(settings)
    try:
        if not path.exists():
            _create_key_file(path)
        keys = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ValueError(f"key file {path}: {exc.strerror or exc}") from exc
    try:
        return SecretBox(keys)
    except ValueError as exc:
        raise ValueError(f"key file {path}: {exc}") from exc


def _create_key_file(path: Path) -> None:
    """Write a new key to ``path`` unless another process just did: written whole to a
    file of its own first, then linked into place (which fails if ``path`` exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(Fernet.generate_key().decode() + "\n")
    try:
        os.link(draft, path)
        log.info("a key for handler secrets was written to %s", path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
