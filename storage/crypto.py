"""Encryption at rest: field ciphers, the keyring file, blind indexes and password hashing.

Every personal value is stored as ``version | key id | nonce | AES-256-GCM(ciphertext+tag)``
with the table, column and row id as associated data, so a ciphertext copied to another
row or column does not decrypt. Lookups go through blind indexes (HMAC-SHA256 under a
per-field key derived with HKDF from a root that never encrypts anything).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import threading
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# One definition for core and storage; re-exported here for the repositories.
from core.identifiers import normalise_phone, normalise_user_id

__all__ = [
    "Argon2PasswordHasher",
    "CryptoError",
    "DecryptionError",
    "FieldCipher",
    "Keyring",
    "KeyringError",
    "normalise_email",
    "normalise_phone",
    "normalise_user_id",
]

KEY_BYTES = 32
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
TOKEN_VERSION = b"\x01"
KEYRING_FORMAT = 1
BLIND_INDEX_INFO = b"selfcare/blind-index/v1/"

_PREFIX_BYTES = len(TOKEN_VERSION) + KEY_ID_BYTES
_HEADER_BYTES = _PREFIX_BYTES + NONCE_BYTES
_KEY_ID_PATTERN = re.compile(r"[0-9a-f]{8}")


class CryptoError(Exception):
    """Base class for every error raised by this module."""


class DecryptionError(CryptoError):
    """A ciphertext was tampered with, bound to another row or under an unknown key."""


class KeyringError(CryptoError):
    """The keyring file or a keyring operation is invalid."""


# --- keyring -----------------------------------------------------------------------------


def _new_key_id(taken: Mapping[str, bytes]) -> str:
    while True:
        key_id = secrets.token_hex(KEY_ID_BYTES)
        if key_id not in taken:
            return key_id


@dataclass(frozen=True)
class Keyring:
    """One active encryption key, older keys kept for decryption, and the blind-index root."""

    active_key_id: str
    keys: Mapping[str, bytes] = field(repr=False)
    index_key: bytes = field(repr=False)
    generated_for_development: bool = False

    def __post_init__(self) -> None:
        # A read-only copy, so a keyring handed around cannot be changed under a cipher.
        object.__setattr__(self, "keys", types.MappingProxyType(dict(self.keys)))
        for key_id, key in self.keys.items():
            if not isinstance(key_id, str) or not _KEY_ID_PATTERN.fullmatch(key_id):
                raise KeyringError("key ids must be 8 lowercase hex characters")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id} is not {KEY_BYTES} bytes")
        if self.active_key_id not in self.keys:
            raise KeyringError(f"active key {self.active_key_id!r} is not in the keyring")
        if not isinstance(self.index_key, bytes) or len(self.index_key) != KEY_BYTES:
            raise KeyringError(f"index key is not {KEY_BYTES} bytes")
        if any(hmac.compare_digest(self.index_key, key) for key in self.keys.values()):
            raise KeyringError("index key must differ from every encryption key")

    @classmethod
    def generate(cls, *, for_development: bool = False) -> Keyring:
        """Return a new keyring with one fresh random key and a fresh index root."""
        key_id = _new_key_id({})
        return cls(
            active_key_id=key_id,
            keys={key_id: os.urandom(KEY_BYTES)},
            index_key=os.urandom(KEY_BYTES),
            generated_for_development=for_development,
        )

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read a keyring file.

        Raises KeyringError with a one-line reason if the file is missing or unreadable,
        readable by group or others, not the expected JSON, or holds keys of the wrong size.
        """
        try:
            # Check the mode on the open descriptor, so the file checked is the file read.
            with path.open("rb") as file:
                mode = os.fstat(file.fileno()).st_mode
                if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise KeyringError(
                        f"keyring file {path} is accessible to group or others "
                        f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
                    )
                raw = file.read()
        except FileNotFoundError:
            raise KeyringError(f"keyring file {path} does not exist") from None
        except OSError as exc:
            raise KeyringError(f"cannot read keyring file {path}: {exc.strerror}") from None
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyringError(f"keyring file {path} is not valid JSON") from None
        try:
            return cls._from_document(document)
        except KeyringError as exc:
            raise KeyringError(f"keyring file {path}: {exc}") from None

    @classmethod
    def load_or_create(cls, path: Path) -> Keyring:
        """Load the keyring at ``path``, or create a development keyring there if none exists.

        The created file says ``"development": true`` so the process can warn about it on
        every start. Raises KeyringError as ``load`` does, or if the file cannot be written.
        """
        if path.exists():
            return cls.load(path)
        keyring = cls.generate(for_development=True)
        try:
            # Two processes starting at once must end up with the same keys: publish with a
            # hard link, which fails if the other process got there first.
            _write_private_file(path, keyring._to_json(), replace=False)
        except FileExistsError:
            return cls.load(path)
        return keyring

    def save(self, path: Path) -> None:
        """Write the keyring to ``path`` atomically with mode 0600.

        Raises KeyringError if the file cannot be written.
        """
        _write_private_file(path, self._to_json(), replace=True)

    def rotated(self) -> Keyring:
        """Return a keyring whose new random key is active; older keys stay for decryption."""
        key_id = _new_key_id(self.keys)
        return Keyring(
            active_key_id=key_id,
            keys={**self.keys, key_id: os.urandom(KEY_BYTES)},
            index_key=self.index_key,
            generated_for_development=self.generated_for_development,
        )

    def without(self, key_id: str) -> Keyring:
        """Return a keyring without the retired key ``key_id``.

        Raises KeyringError if ``key_id`` is the active key or is not in the keyring.
        """
        if key_id == self.active_key_id:
            raise KeyringError(f"key {key_id} is active and cannot be retired")
        if key_id not in self.keys:
            raise KeyringError(f"key {key_id!r} is not in the keyring")
        return Keyring(
            active_key_id=self.active_key_id,
            keys={kid: key for kid, key in self.keys.items() if kid != key_id},
            index_key=self.index_key,
            generated_for_development=self.generated_for_development,
        )

    def _to_json(self) -> bytes:
        document = {
            "format": KEYRING_FORMAT,
            "active": self.active_key_id,
            "keys": {kid: base64.b64encode(key).decode("ascii") for kid, key in self.keys.items()},
            "index_key": base64.b64encode(self.index_key).decode("ascii"),
            "development": self.generated_for_development,
        }
        return json.dumps(document, indent=2).encode("ascii") + b"\n"

    @classmethod
    def _from_document(cls, document: Any) -> Keyring:
        if not isinstance(document, dict):
            raise KeyringError("top level is not a JSON object")
        if document.get("format") != KEYRING_FORMAT:
            raise KeyringError(f"unsupported format {document.get('format')!r}")
        active = document.get("active")
        keys = document.get("keys")
        development = document.get("development", False)
        if not isinstance(active, str):
            raise KeyringError('"active" is missing or not a string')
        if not isinstance(keys, dict) or not keys:
            raise KeyringError('"keys" is missing or empty')
        if not isinstance(development, bool):
            raise KeyringError('"development" is not true or false')
        return cls(
            active_key_id=active,
            keys={str(kid): _decode_key(value, f"key {kid}") for kid, value in keys.items()},
            index_key=_decode_key(document.get("index_key"), "index_key"),
            generated_for_development=development,
        )


def _decode_key(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyringError(f"{what} is missing or not a base64 string")
    try:
        key = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise KeyringError(f"{what} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{what} is {len(key)} bytes, expected {KEY_BYTES}")
    return key


def _write_private_file(path: Path, content: bytes, *, replace: bool) -> None:
    """Write ``content`` to a 0600 temp file beside ``path``, fsync it, then publish it.

    With ``replace=False`` an existing file is left alone and FileExistsError is raised.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # The key bytes must never sit in a file others can read, not even for a moment.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
        _fsync_directory(path.parent)
    except FileExistsError:
        raise
    except OSError as exc:
        raise KeyringError(f"cannot write keyring file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _fsync_directory(directory: Path) -> None:
    # Without this the rename itself may be lost in a crash on some filesystems.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- field encryption ----------------------------------------------------------------------


@dataclass(frozen=True)
class _CipherState:
    keyring: Keyring
    aeads: Mapping[str, AESGCM]
    index_keys: dict[str, bytes]


def _associated_data(table: str, column: str, row_id: str) -> bytes:
    # Dots in table or column would make "a.b"+"c" and "a"+"b.c" bind to the same data.
    if not table or not column or "." in table or "." in column:
        raise ValueError("table and column must be non-empty names without dots")
    if not row_id:
        raise ValueError("row_id must not be empty: it binds the ciphertext to its row")
    return f"{table}.{column}.{row_id}".encode()


class FieldCipher:
    """Encrypts and decrypts column values with the keyring's keys, and computes blind indexes."""

    def __init__(self, keyring: Keyring) -> None:
        self._state = self._state_for(keyring, index_keys={})

    @property
    def keyring(self) -> Keyring:
        """The keyring in use."""
        return self._state.keyring

    def use(self, keyring: Keyring) -> None:
        """Switch to ``keyring`` (e.g. after a rotation); blind-index keys are kept if unchanged."""
        current = self._state
        same_root = hmac.compare_digest(current.keyring.index_key, keyring.index_key)
        # One attribute assignment, so a thread mid-encrypt sees either the old or the new state.
        self._state = self._state_for(keyring, current.index_keys if same_root else {})

    @staticmethod
    def _state_for(keyring: Keyring, index_keys: dict[str, bytes]) -> _CipherState:
        aeads = {kid: AESGCM(key) for kid, key in keyring.keys.items()}
        return _CipherState(keyring, types.MappingProxyType(aeads), index_keys)

    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: str) -> bytes:
        """Encrypt text under the active key, bound to ``table.column.row_id``.

        Raises ValueError if table or column is empty or holds a dot, or row_id is empty.
        """
        return self.encrypt_bytes(
            plaintext.encode("utf-8"), table=table, column=column, row_id=row_id
        )

    def decrypt(self, token: bytes, *, table: str, column: str, row_id: str) -> str:
        """Decrypt text stored by ``encrypt`` for the same ``table.column.row_id``.

        Raises DecryptionError if the token is malformed, under an unknown key, tampered
        with, or was encrypted for another row, column or table.
        """
        data = self.decrypt_bytes(token, table=table, column=column, row_id=row_id)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError(f"{table}.{column}: value is not UTF-8 text") from None

    def encrypt_bytes(self, data: bytes, *, table: str, column: str, row_id: str) -> bytes:
        """Encrypt a binary payload; otherwise as ``encrypt``."""
        associated = _associated_data(table, column, row_id)
        state = self._state
        key_id = state.keyring.active_key_id
        # Random 96-bit nonces are safe for 2**32 messages per key; rotation resets the count.
        nonce = os.urandom(NONCE_BYTES)
        sealed = state.aeads[key_id].encrypt(nonce, data, associated)
        return TOKEN_VERSION + bytes.fromhex(key_id) + nonce + sealed

    def decrypt_bytes(self, token: bytes, *, table: str, column: str, row_id: str) -> bytes:
        """Decrypt a binary payload; otherwise as ``decrypt``."""
        associated = _associated_data(table, column, row_id)
        where = f"{table}.{column}"
        if len(token) < _HEADER_BYTES + TAG_BYTES or token[:1] != TOKEN_VERSION:
            raise DecryptionError(f"{where}: not a selfcare ciphertext")
        key_id = token[1:_PREFIX_BYTES].hex()
        aead = self._state.aeads.get(key_id)
        if aead is None:
            raise DecryptionError(f"{where}: key {key_id} is not in the keyring")
        try:
            return aead.decrypt(
                token[_PREFIX_BYTES:_HEADER_BYTES], token[_HEADER_BYTES:], associated
            )
        except InvalidTag:
            raise DecryptionError(
                f"{where}: authentication failed under key {key_id} "
                "(tampered, or stored for another row)"
            ) from None

    @staticmethod
    def key_id_of(token: bytes) -> str:
        """Return the id of the key ``token`` was encrypted under.

        Raises DecryptionError if ``token`` is not a ciphertext of this format.
        """
        if len(token) < _HEADER_BYTES + TAG_BYTES or token[:1] != TOKEN_VERSION:
            raise DecryptionError("not a selfcare ciphertext")
        return token[1:_PREFIX_BYTES].hex()

    def key_prefix(self, key_id: str | None = None) -> bytes:
        """Return the leading bytes of every ciphertext under ``key_id`` (default: active key).

        Storage compares them in SQL to find rows still on an old key. Raises ValueError if
        ``key_id`` is not 8 lowercase hex characters.
        """
        key_id = self._state.keyring.active_key_id if key_id is None else key_id
        if not _KEY_ID_PATTERN.fullmatch(key_id):
            raise ValueError("key ids are 8 lowercase hex characters")
        return TOKEN_VERSION + bytes.fromhex(key_id)

    def blind_index(self, field: str, value: str) -> bytes:
        """Return HMAC-SHA256 of ``value`` under the key for ``field`` (32 bytes).

        Normalise ``value`` first (``normalise_phone`` etc.). Raises ValueError if ``field``
        is empty.
        """
        if not field:
            raise ValueError("blind index field must not be empty")
        state = self._state
        key = state.index_keys.get(field)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=KEY_BYTES,
                salt=None,
                info=BLIND_INDEX_INFO + field.encode("utf-8"),
            ).derive(state.keyring.index_key)
            state.index_keys[field] = key
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()


# --- normalising lookups ---------------------------------------------------------------------


def normalise_email(value: str) -> str:
    """Return ``value`` stripped and case-folded, for blind-index lookups."""
    return value.strip().casefold()


# --- passwords -------------------------------------------------------------------------------


class Argon2PasswordHasher:
    """argon2id with OWASP parameters (memory 19 MiB = 19456 KiB, time_cost=2, parallelism=1),
    computed off the event loop."""

    def __init__(
        self, *, time_cost: int = 2, memory_cost_kib: int = 19456, parallelism: int = 1
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    async def hash(self, password: str) -> str:
        """Return the encoded argon2id hash of ``password``.

        Raises ValueError if the password cannot be encoded as UTF-8 (lone surrogates).
        """
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Return whether ``password`` matches ``password_hash``; False for an invalid hash."""
        return await asyncio.to_thread(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Return whether ``password_hash`` was made with other parameters (or is unreadable)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    async def dummy_verify(self, password: str) -> None:
        """Spend the time of a real ``verify`` when there is no user, so timing reveals nothing."""
        await asyncio.to_thread(self._dummy_verify, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        # ValueError: a hash or password that does not encode (non-ASCII hash, lone surrogate).
        except (VerificationError, InvalidHashError, ValueError):
            return False

    def _dummy_verify(self, password: str) -> None:
        with self._dummy_lock:
            if self._dummy_hash is None:
                # Made with this hasher's own parameters, so a dummy verify costs what a real
                # one does; only the first call also pays for this hash.
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            dummy_hash = self._dummy_hash
        self._verify(dummy_hash, password)
