"""AccessKey secrets at rest: encrypted with a Fernet key from configuration, checked at start."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

_CHECK = "hpcplane-key-check"


class SecretKeyMismatch(RuntimeError):
    """The configured key cannot decrypt what the store holds."""


class SecretBox:
    """Encrypts and decrypts AccessKey secrets."""

    def __init__(self, key: str | bytes) -> None:
        self._key = key.encode() if isinstance(key, str) else key
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise SecretKeyMismatch(
                "HPCPLANE_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes); make one with "
                '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
            ) from None

    def derive(self, purpose: bytes) -> bytes:
        """A key for another purpose (e.g. keyed hashes of secrets), derived from this one."""
        return hmac.new(self._key, purpose, hashlib.sha256).digest()

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        """The secret sealed in `token`; each token is decrypted once per process (every request reads
        its key's), and a token is only ever sealed by this key."""
        return self._open(token)

    @lru_cache(maxsize=4096)  # noqa: B019 (one box per process, alive as long as it)
    def _open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise SecretKeyMismatch(
                "the secret key does not decrypt the stored AccessKey secrets: "
                "set HPCPLANE_SECRET_KEY to the key the store was made with"
            ) from error

    def check_token(self) -> str:
        """A sealed constant, kept in the store so a wrong key is found at start, not at the first call."""
        return self.seal(_CHECK)

    def verify(self, token: str) -> None:
        """Raise SecretKeyMismatch unless `token` was made by check_token with this key."""
        if self.open(token) != _CHECK:
            raise SecretKeyMismatch("the secret key check token holds an unexpected value")


def load_or_create_key(configured: str | None, home: Path) -> str:
    """The configured key, or the one kept under home (created with mode 0600 on first use)."""
    if configured:
        return configured
    path = home / "secret.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        # Write a private temporary file, then link it into place: the link fails if another process
        # created the key first, and no process ever reads a half-written key.
        draft = home / f".secret.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode() + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
