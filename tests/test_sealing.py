"""Sealing handler secrets: keys, rotation, the key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from herald.config import Settings
from herald.sealing import SEALED, SecretBox, SecretUnavailable, key_file, load_box

SECRET = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="


def test_a_sealed_secret_opens_with_its_key_and_no_other() -> None:
    key, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox([key]).seal(SECRET)
    assert sealed.startswith(SEALED) and SECRET not in sealed and "c2VjcmV0" not in sealed
    assert SecretBox([key]).open(sealed) == SECRET
    with pytest.raises(SecretUnavailable):
        SecretBox([other]).open(sealed)
    assert SecretBox([other]).reseal(sealed) is None  # left for a process with the key


def test_plaintext_is_read_as_it_is_and_resealed() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    assert box.open(SECRET) == SECRET
    resealed = box.reseal(SECRET)
    assert resealed is not None and box.open(resealed) == SECRET
    assert box.reseal(resealed) is None  # already under the current key


def test_rotation_reseals_with_the_first_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox([old]).seal(SECRET)
    rotating = SecretBox([new, old])
    assert rotating.open(sealed) == SECRET
    resealed = rotating.reseal(sealed)
    assert resealed is not None and SecretBox([new]).open(resealed) == SECRET


def test_the_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'herald.db'}")
    box = load_box(settings)
    path = key_file(settings)
    assert path == tmp_path / "herald.db.secret-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_box(settings).open(box.seal(SECRET)) == SECRET  # the same key next time
    assert [p.name for p in tmp_path.iterdir()] == ["herald.db.secret-key"]


@pytest.mark.parametrize("key", ["short", "", " , "])
def test_a_malformed_key_is_a_clear_error(tmp_path: Path, key: str) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", secret_key=key or None)
    if not key:
        (tmp_path / "h.db.secret-key").write_text("not a key\n")
    with pytest.raises(ValueError, match="key"):
        load_box(settings)
