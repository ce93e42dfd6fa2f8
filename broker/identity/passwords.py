"""Password hashing with scrypt (memory-hard, in the standard library).

A hash is `scrypt$<n>$<r>$<p>$<salt b64>$<key b64>`, so the cost can be raised
later and old hashes still verify (`needs_rehash` tells the sign-in to upgrade
them). n=2**15, r=8 takes about 30-60 ms and 32 MiB per check on one core:
slow for an attacker with a stolen table, fast enough for people signing in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**15, 8, 1
KEY_BYTES = 32
MIN_LENGTH = 10
MAX_LENGTH = 256


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=256 * n * r + 1024 * 1024)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(_derive(password, salt, N, R, P))}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant time in the password; False for a malformed or missing hash."""
    if not stored or len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        derived = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, expected)


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${N}${R}${P}$")


def password_problem(password: str, *, email: str = "") -> str | None:
    """Why a new password is refused, or None. Length, not composition rules
    (NIST SP 800-63B): at least 10 characters, not the email address."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    if email and password.strip().lower() == email.strip().lower():
        return "must not be your email address"
    return None


# Verified against when no user has the email, so that "no such user" takes as
# long as "wrong password" and sign-in does not reveal who has an account.
DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + _b64(bytes(KEY_BYTES))
