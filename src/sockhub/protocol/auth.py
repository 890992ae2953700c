"""The hmac-sha256 mutual authentication transcript (PROTOCOL.md section 3).

Both macs bind the user name and both nonces, with a different label per direction, so
a mac seen on one connection is worthless on another (fresh server nonce) and a client
mac cannot be reflected back as a server mac.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = [
    "KEY_BYTES",
    "METHOD",
    "NONCE_BYTES",
    "b64decode_nonce",
    "cert_fingerprint",
    "client_mac",
    "new_key",
    "new_nonce",
    "server_mac",
    "verify",
]

METHOD = "hmac-sha256"
KEY_BYTES = 32
NONCE_BYTES = 32
_CLIENT_LABEL = b"sockhub-v1 client\x00"
_SERVER_LABEL = b"sockhub-v1 server\x00"


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def b64decode_nonce(text: object) -> bytes | None:
    """The 32 raw bytes of a base64 nonce, or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return raw if len(raw) == NONCE_BYTES else None


def client_mac(key: bytes, snonce: bytes, cnonce: bytes, user: str) -> bytes:
    return hmac.digest(key, _CLIENT_LABEL + snonce + cnonce + user.encode(), "sha256")


def server_mac(key: bytes, snonce: bytes, cnonce: bytes, user: str) -> bytes:
    return hmac.digest(key, _SERVER_LABEL + cnonce + snonce + user.encode(), "sha256")


def verify(expected: bytes, hex_mac: object) -> bool:
    """Constant-time comparison of a received hex mac with the expected digest."""
    if not isinstance(hex_mac, str) or len(hex_mac) != 2 * len(expected):
        return False
    try:
        received = bytes.fromhex(hex_mac)
    except ValueError:
        return False
    return hmac.compare_digest(expected, received)


def cert_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as colon-separated hex: what clients pin and show."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
