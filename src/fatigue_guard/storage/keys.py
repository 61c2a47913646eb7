"""Device API keys: generated once, shown once, stored as a hash.

A key looks like ``fgk_<key-id>_<secret>``. The key id is public and indexed, so verification is
one lookup by id followed by a constant-time comparison of the secret's hash. The secret carries
256 bits of randomness, so a fast hash (SHA-256) is enough: unlike passwords, there is nothing to
brute-force from a leaked hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "fgk"
# Issued keys are 64 characters; anything much longer is not one of ours, and is refused before
# it reaches a SQL query or a cache.
MAX_KEY_CHARS = 256


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly created key. ``plaintext`` exists only here: print it once, never store it."""

    key_id: str
    user_id: str
    plaintext: str


def new_key() -> tuple[str, str, str]:
    """``(key_id, plaintext, key_hash)`` for a new random key."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else ``None`` (never raises on bad input)."""
    if len(presented) > MAX_KEY_CHARS:
        return None
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), key_hash)
