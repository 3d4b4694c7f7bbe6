"""Users of the web UI: roles, password hashing, and the one way to add a user (validated and
audited), used by the UI, the CLI and the demo."""

from __future__ import annotations

import datetime as dt

from werkzeug.security import check_password_hash, generate_password_hash

from bems.errors import BemsError
from bems.storage import Store

ROLES = ("viewer", "operator", "admin")
LANGS = ("vi", "en")
MIN_PASSWORD = 8


class UserError(BemsError):
    """A user that cannot be saved; `code` is a message key the UI translates."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def password_ok(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


def save_user(store: Store, name: str, role: str, password: str, lang: str, by: str,
              now: dt.datetime | None = None) -> None:
    """Add a user, or change a user's role and password; the password is stored hashed."""
    name = name.strip()
    if not name or role not in ROLES:
        raise UserError("name_role", "give a user name and one of the roles "
                                     + ", ".join(ROLES))
    if len(password) < MIN_PASSWORD:
        raise UserError("password_short", f"use at least {MIN_PASSWORD} characters")
    if lang not in LANGS:
        raise UserError("lang", f"language must be one of {', '.join(LANGS)}")
    store.add_user(name, role, hash_password(password), lang)
    store.audit(by, "user.add", {"name": name, "role": role}, now)
