"""Users of the web UI: roles, passwords, and the only ways to add, change, disable or delete a
user — validated and audited — used by the UI, the CLI and the demo.

Passwords: at least 10 characters, not white space, not one character repeated or a run of
digits, not a common password, not the user name; stored hashed (scrypt via Werkzeug). The
last active admin can be neither demoted, disabled nor deleted. A changed password, a disabled
or deleted account ends that user's sessions.
"""

from __future__ import annotations

import datetime as dt
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from bems.errors import BemsError
from bems.storage import Store
from bems.text import clean_text

ROLES = ("viewer", "operator", "admin")
LANGS = ("vi", "en")
MIN_PASSWORD, MAX_PASSWORD, MAX_NAME = 10, 256, 64
COMMON = {"password", "password1", "password123", "123456789", "1234567890", "qwertyuiop",
          "matkhau123", "admin12345", "administrator", "abc123456", "iloveyou1", "11111111"}


class UserError(BemsError):
    """A user change that cannot be made; `code` is a message key the UI translates."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def hash_password(password: str) -> str:
    return generate_password_hash(password)


# compared against when the name is unknown, so a wrong name costs what a wrong password does
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


def password_ok(password_hash: str | None, password: str) -> bool:
    if len(password) > MAX_PASSWORD:
        return False
    return check_password_hash(password_hash or _DUMMY_HASH, password) and password_hash is not None


def check_name(name: str) -> str:
    clean = clean_text(name, MAX_NAME + 1)
    if not clean or clean != name.strip() or len(clean) > MAX_NAME or \
            clean.startswith(("=", "+", "-", "@")):
        raise UserError("name_invalid", f"a user name is 1 to {MAX_NAME} printable characters "
                                        "(no leading =, +, -, @)")
    return clean


def check_password(password: str, name: str = "") -> None:
    p = password
    if len(p) < MIN_PASSWORD or len(p) > MAX_PASSWORD:
        raise UserError("password_short",
                        f"use {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if not p.strip() or len(set(p)) < 4 or p.isdigit() or p.lower() in COMMON or \
            (name and name.lower() in p.lower()):
        raise UserError("password_weak", "the password is too easy to guess (repeated or few "
                                         "characters, only digits, common, or the user name)")


def _check_role_lang(role: str, lang: str) -> None:
    if role not in ROLES:
        raise UserError("role_invalid", f"the role is one of {', '.join(ROLES)}")
    if lang not in LANGS:
        raise UserError("lang", f"the language is one of {', '.join(LANGS)}")


def add_user(store: Store, name: str, role: str, password: str, lang: str, by: str,
             now: dt.datetime | None = None) -> str:
    """A new user. A name already taken is refused (change a user with the other functions)."""
    name = check_name(name)
    _check_role_lang(role, lang)
    check_password(password, name)
    if not store.add_user(name, role, hash_password(password), lang, now):
        raise UserError("name_taken", f"there is already a user {name!r}")
    store.audit(by, "user.add", {"name": name, "role": role}, now)
    return name


def _existing(store: Store, name: str) -> dict:
    user = store.user(name)
    if user is None:
        raise UserError("unknown_user", f"no user {name!r}")
    return user


def _other_active_admins(store: Store, name: str) -> int:
    return sum(1 for u in store.users() if u["role"] == "admin" and not u["disabled"]
               and u["name"] != name)


def set_password(store: Store, name: str, password: str, by: str,
                 now: dt.datetime | None = None) -> None:
    _existing(store, name)
    check_password(password, name)
    store.update_user(name, password_hash=hash_password(password))
    store.end_sessions(user=name)
    store.audit(by, "user.password", {"name": name}, now)


def set_role(store: Store, name: str, role: str, by: str, now: dt.datetime | None = None) -> None:
    user = _existing(store, name)
    _check_role_lang(role, "vi")
    if user["role"] == "admin" and role != "admin" and not _other_active_admins(store, name):
        raise UserError("last_admin", "the last active admin cannot be demoted")
    store.update_user(name, role=role)
    store.audit(by, "user.role", {"name": name, "role": role}, now)


def set_disabled(store: Store, name: str, disabled: bool, by: str,
                 now: dt.datetime | None = None) -> None:
    user = _existing(store, name)
    if disabled and user["role"] == "admin" and not _other_active_admins(store, name):
        raise UserError("last_admin", "the last active admin cannot be disabled")
    store.update_user(name, disabled=disabled)
    if disabled:
        store.end_sessions(user=name)
    store.audit(by, "user.disable" if disabled else "user.enable", {"name": name}, now)


def delete_user(store: Store, name: str, by: str, now: dt.datetime | None = None) -> None:
    user = _existing(store, name)
    if user["role"] == "admin" and not _other_active_admins(store, name):
        raise UserError("last_admin", "the last active admin cannot be deleted")
    store.delete_user(name)
    store.audit(by, "user.delete", {"name": name}, now)
