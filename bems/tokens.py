"""Bearer tokens for the read API: made once, shown once, kept only as a hash (SHA-256 of 256
random bits: nothing to brute-force, so no slow hash is needed), with a scope (only "read"
today; the column is ready for a write scope), an optional expiry, and revocation."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from bems.errors import BemsError

SCOPES = ("read",)
PREFIX = "bems_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class TokenError(BemsError):
    pass


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create(store, name: str, scope: str, now: dt.datetime, expires_days: float | None = None,
           by: str | None = None) -> str:
    """A new token (returned once: only its hash is stored)."""
    if not NAME.fullmatch(name or ""):
        raise TokenError("a token's name is 1-64 letters, digits, '.', '_' or '-'")
    if scope not in SCOPES:
        raise TokenError(f"scope must be one of {', '.join(SCOPES)}")
    if expires_days is not None and not 0 < expires_days <= 3660:
        raise TokenError("expires must be 1..3660 days")
    token = PREFIX + secrets.token_urlsafe(32)
    expires = now + dt.timedelta(days=expires_days) if expires_days else None
    if not store.add_token(name, digest(token), scope, now, expires, by):
        raise TokenError(f"a token named {name!r} exists (revoke it first)")
    store.audit(by, "token.create", {"name": name, "scope": scope,
                                     "expires": expires.isoformat() if expires else None}, now)
    return token


def check(store, token: str, now: dt.datetime) -> dict | None:
    """The token's record if it is known, not revoked and not expired; else None."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    t = store.token_by_hash(digest(token))
    if t is None or t["revoked"] is not None or (t["expires"] is not None and
                                                  t["expires"] <= now):
        return None
    return t
