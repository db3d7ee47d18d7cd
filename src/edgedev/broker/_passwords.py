"""Password files for the embedded broker, in mosquitto's ``password_file`` format.

One ``username:hash`` line per user; the hash is mosquitto's ``$7$`` form, PBKDF2-HMAC-SHA512
written as ``$7$ITERATIONS$SALT$HASH`` (salt and hash in base64), so a file made by
``mosquitto_passwd`` works here and one made by ``edgedev broker --add-user`` works in
mosquitto 2. Plain-text passwords and mosquitto 1.x's single-round ``$6$`` hashes are refused
when the file is read: a stolen file must not give the passwords away cheaply.

Pure apart from reading and writing the file: checking a password costs one PBKDF2 (about
0.15 s at :data:`ITERATIONS`), so the broker runs :meth:`PasswordFile.check` in a worker
thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ("ITERATIONS", "PasswordFile", "add_user", "hash_password")

ITERATIONS: Final = 100_000
"""PBKDF2-HMAC-SHA512 rounds of the hashes edgedev writes (mosquitto_passwd writes 101)."""
_SALT_BYTES: Final = 12
_MAX_ITERATIONS: Final = 10_000_000
_ALGORITHM: Final = "sha512"


@dataclass(frozen=True, slots=True)
class _Hash:
    iterations: int
    salt: bytes
    digest: bytes

    def matches(self, password: str) -> bool:
        derived = hashlib.pbkdf2_hmac(
            _ALGORITHM, password.encode("utf-8"), self.salt, self.iterations
        )
        return hmac.compare_digest(derived, self.digest)


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    """The ``$7$`` hash of ``password`` with a fresh random salt.

    Example:
        >>> hash_password("s3cret").startswith("$7$100000$")
        True
    """
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac(_ALGORITHM, password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse_hash(text: str) -> _Hash:
    """Raise ValueError saying what is wrong with ``text``."""
    if not text.startswith("$"):
        raise ValueError("the password is in plain text; hash it (edgedev broker --add-user)")
    parts = text.split("$")
    if len(parts) != 5 or parts[1] != "7":
        kind = parts[1] if len(parts) > 1 else "?"
        raise ValueError(
            f"hash type ${kind}$ is not accepted, only $7$ (PBKDF2-SHA512); "
            "set the password again with edgedev broker --add-user or mosquitto_passwd"
        )
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("malformed $7$ hash") from None
    if not 1 <= iterations <= _MAX_ITERATIONS or not salt or len(digest) != 64:
        raise ValueError("malformed $7$ hash")
    return _Hash(iterations, salt, digest)


class PasswordFile:
    """The users of a password file and their hashes, read once.

    Example:
        >>> users = PasswordFile({"alice": hash_password("s3cret", iterations=1000)})
        >>> users.check("alice", b"s3cret"), users.check("alice", b"guess")
        (True, False)
        >>> users.check("bob", b"s3cret"), users.check(None, None)
        (False, False)
    """

    def __init__(self, hashes: dict[str, str]) -> None:
        """Users and their ``$7$`` hashes.

        Raises:
            ValueError: a hash is not a well-formed ``$7$`` hash (naming the user).
        """
        self._users: dict[str, _Hash] = {}
        for user, text in hashes.items():
            try:
                self._users[user] = _parse_hash(text)
            except ValueError as exc:
                raise ValueError(f"user {user!r}: {exc}") from None
        # Unknown users cost as much as known ones, so that timing does not tell them apart.
        rounds = max((h.iterations for h in self._users.values()), default=ITERATIONS)
        self._decoy = _Hash(rounds, b"\0" * _SALT_BYTES, b"\0" * 64)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> PasswordFile:
        """Read a password file.

        Raises:
            OSError: the file cannot be read.
            ValueError: a line is malformed (the message names the file and line).
        """
        path = Path(path)
        hashes: dict[str, str] = {}
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, colon, text = line.partition(":")
            if not colon or not user:
                raise ValueError(f"{path}:{number}: expected 'username:hash'")
            try:
                _parse_hash(text)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: user {user!r}: {exc}") from None
            hashes[user] = text
        return cls(hashes)

    def __len__(self) -> int:
        """The number of users."""
        return len(self._users)

    def check(self, username: str | None, password: bytes | None) -> bool:
        """Whether ``password`` is the password of ``username`` (slow: one PBKDF2)."""
        if username is None or password is None:
            return False
        try:
            text = password.decode("utf-8")
        except UnicodeDecodeError:
            return False
        known = self._users.get(username)
        if known is None:
            self._decoy.matches(text)
            return False
        return known.matches(text)


def add_user(path: str | os.PathLike[str], username: str, password: str) -> None:
    """Set ``username``'s password in the file at ``path``, creating it (mode 0600) if needed.

    Other lines are kept as they are; the file is replaced atomically.

    Raises:
        ValueError: the user name is empty or holds ``:`` or a line break.
    """
    if not username or any(c in username for c in ":\r\n"):
        raise ValueError(f"user name {username!r} must be non-empty, without ':' or line breaks")
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    entry = f"{username}:{hash_password(password)}"
    kept = [line for line in lines if line.partition(":")[0].strip() != username]
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join([*kept, entry]) + "\n")
    partial.replace(path)
