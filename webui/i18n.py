"""Language per user (or from Accept-Language before login); numbers, dates and money in the
locale's format: 1.234,5 kWh and 25/11/2026 in Vietnamese."""

from __future__ import annotations

import datetime as dt

from babel.dates import format_date, format_datetime
from flask import request, session

from bems import formatting

LANGS = ("vi", "en")


def select_locale() -> str:
    lang = session.get("lang")
    if lang in LANGS:
        return lang
    return request.accept_languages.best_match(LANGS) or "vi"


def current_locale() -> str:
    try:
        return select_locale()
    except RuntimeError:
        return "vi"


def text_lang() -> str:
    """The language Flask-Babel renders this request in (force_locale included): vi or en."""
    from flask_babel import get_locale

    loc = get_locale()
    return "en" if loc is not None and loc.language == "en" else "vi"


def number(value, digits: int = 1) -> str:
    return "–" if value is None else formatting.number(value, current_locale(), digits)


def field_number(value) -> str:
    """A number as a form field shows it: no thousands separator (a Vietnamese "2.226" would
    come back as 2.226), the reader's decimal mark, no trailing zeros; empty for none."""
    if value is None:
        return ""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") if str(current_locale()).startswith("vi") else text


def money(value) -> str:
    return "–" if value is None else number(value, 0) + " ₫"


def date(value: dt.date | dt.datetime) -> str:
    return format_date(value, "dd/MM/yyyy", locale=current_locale()) if value else "–"


def datetime(value: dt.datetime, tz=None) -> str:
    if value is None:
        return "–"
    if tz is not None and value.tzinfo is not None:
        value = value.astimezone(tz)
    return format_datetime(value, "dd/MM/yyyy HH:mm", locale=current_locale())


def at_render(fn):
    """A template filter run at every render. Jinja applies a plain filter to a constant
    (`"open"|fault_status`) once, when it compiles the template: the text of the language of
    that first render stayed for everyone after it."""
    from jinja2 import pass_context

    @pass_context  # (Jinja folds no filter that takes the render's context)
    def run(_context, *args, **kwargs):
        return fn(*args, **kwargs)

    return run


def register_filters(app) -> None:
    app.jinja_env.filters["num"] = at_render(number)
    app.jinja_env.filters["money"] = at_render(money)
    app.jinja_env.filters["field"] = at_render(field_number)
    app.jinja_env.filters["date"] = at_render(date)

    def _dt(value):
        from webui import ctx
        return datetime(value, ctx()["site"].tz)

    app.jinja_env.filters["dt"] = at_render(_dt)

