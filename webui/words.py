"""The words our code produces, in the reader's language: modes, the strategies' reasons
(kept in English in the ledger, the one record every tool reads), day and season names,
ledger actions, sources and outcomes, who commands a zone.

A reason is a "; "-joined list of parts, each one of the forms bems/strategies/plan.py writes;
each part is matched here and rendered from its Vietnamese or English template. A part no
pattern knows is shown as it is (tests/test_vietnamese.py fails on it, so a new reason in the
planner comes with its translation).
"""

from __future__ import annotations

import json

import re
from typing import Callable

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

_T = r"(\d\d:\d\d)"
_N = r"(-?[\d.]+)"

MODES = {
    "occupied": _l("working hours"), "idle": _l("working hours, no cooling needed"),
    "early-stop": _l("early stop"), "break": _l("lunch break"), "cooldown": _l("cool-down"),
    "unoccupied": _l("outside working hours"), "override": _l("operator override"),
    "outdoor-air": _l("outdoor air"),
}


def _num(text: str) -> str:
    from webui.i18n import number

    try:
        return number(float(text), 1 if "." in text else 0)
    except ValueError:
        return text


# (pattern, template); the template's %(a)s, %(b)s… are the pattern's groups in order
_REASONS: list[tuple[re.Pattern, Callable[[], str], tuple[str, ...]]] = [
    (re.compile(r"unoccupied"), lambda: _("outside working hours"), ()),
    (re.compile(rf"occupied {_T}-{_T}"), lambda: _("working hours %(a)s–%(b)s"), "tt"),
    (re.compile(r"occupied"), lambda: _("working hours"), ()),
    (re.compile(rf"occupied, no cooling needed: {_N} °C is under {_N} °C"),
     lambda: _("working hours, no cooling needed: %(a)s °C is under %(b)s °C"), "nn"),
    (re.compile(rf"early stop: {_N} °C \+ {_N} K/h stays under {_N} °C until {_T}"),
     lambda: _("early stop: %(a)s °C rising %(b)s K/h stays under %(c)s °C until %(d)s"),
     "nnnt"),
    (re.compile(rf"break until {_T}"), lambda: _("lunch break until %(a)s"), "t"),
    (re.compile(rf"cool-down started {_T} for {_T} occupancy"),
     lambda: _("cool-down started %(a)s for work at %(b)s"), "tt"),
    (re.compile(rf"zone at {_N} °C cools {_N} K/h"),
     lambda: _("room at %(a)s °C, cooling %(b)s K/h"), "nn"),
    (re.compile(rf"cool-down for {_T} occupancy"), lambda: _("cool-down for work at %(a)s"),
     "t"),
    (re.compile(rf"demand limit level (\d) \(\+{_N} K\)"),
     lambda: _("peak demand level %(a)s (setpoint +%(b)s K)"), "nn"),
    (re.compile(rf"sweep: lights off {_N} min after"),
     lambda: _("lights off %(a)s min after work"), "n"),
    (re.compile(rf"corridor at {_N} %"), lambda: _("corridor at %(a)s %%"), "n"),
    (re.compile(r"unoccupied: lights off"), lambda: _("outside working hours: lights off"),
     ()),
    (re.compile(rf"operator override until {_T} by ([^:]+): (.*)"),
     lambda: _("operator override until %(a)s by %(b)s: %(c)s"), "tss"),
    (re.compile(rf"operator override until {_T} by (.+)"),
     lambda: _("operator override until %(a)s by %(b)s"), "ts"),
    (re.compile(rf"operator override until {_T}"),
     lambda: _("operator override until %(a)s"), "t"),
    (re.compile(r"outdoor air for occupied zones \((.*)\)"),
     lambda: _("outdoor air for the occupied zones (%(a)s)"), "z"),
    (re.compile(rf"free cooling: outdoor {_N} °C is cooler than the zones"),
     lambda: _("free cooling: outdoor air at %(a)s °C is cooler than the rooms"), "n"),
    (re.compile(rf"predictive: cool to {_N} °C"), lambda: _("plan: cool to %(a)s °C"), "n"),
    (re.compile(rf"operative peaks at {_N} °C at {_T} \({_N} °C without cooling\)"),
     lambda: _("felt temperature at most %(a)s °C at %(b)s (%(c)s °C without cooling)"),
     "ntn"),
    (re.compile(rf"predictive: pre-cool to {_N} °C for {_T}"),
     lambda: _("plan: pre-cool to %(a)s °C for work at %(b)s"), "nt"),
    (re.compile(rf"operative would reach {_N} °C at {_T} without it"),
     lambda: _("without it the felt temperature would reach %(a)s °C at %(b)s"), "nt"),
    (re.compile(r"predictive: AC off"), lambda: _("plan: AC off"), ()),
    (re.compile(r"predictive: follow the plan"),
     lambda: _("plan: hold the planned temperature"), ()),
    (re.compile(rf"operative stays under {_N} °C until {_T}"),
     lambda: _("felt temperature stays under %(a)s °C until %(b)s"), "nt"),
    (re.compile(rf"predictive: AC off until {_T}"), lambda: _("plan: AC off until %(a)s"), "t"),
    (re.compile(r"predictive: AC off for the rest of the day"),
     lambda: _("plan: AC off for the rest of the day"), ()),
    (re.compile(r"no one in the zones it serves: outdoor air shut"),
     lambda: _("nobody in the zones it serves: outdoor air shut"), ()),
]


def reason(text: str, zone_names: dict[str, str] | None = None) -> str:
    """A strategy's reason in the reader's language."""
    out = []
    for part in str(text or "").split("; "):
        out.append(_part(part.strip(), zone_names or {}))
    return "; ".join(out)


def _part(part: str, zone_names: dict[str, str]) -> str:
    for pattern, template, kinds in _REASONS:
        m = pattern.fullmatch(part)
        if m is None:
            continue
        args = {}
        for key, kind, value in zip("abcd", kinds, m.groups()):
            if kind == "n":
                value = _num(value)
            elif kind == "z":
                value = ", ".join(zone_names.get(z.strip(), z.strip())
                                  for z in value.split(","))
            args[key] = value
        return template() % args
    return part


def mode(name: str) -> str:
    return str(MODES.get(name, name))


DAYS = {"mon": _l("Mon"), "tue": _l("Tue"), "wed": _l("Wed"), "thu": _l("Thu"),
        "fri": _l("Fri"), "sat": _l("Sat"), "sun": _l("Sun")}
# season names the demo and most site files use; a site's own names are shown as they are
SEASONS = {"summer": _l("summer"), "winter": _l("winter"), "all year": _l("all year")}
ACTIONS = {"write": _l("write"), "release": _l("release"), "restore": _l("restore"),
           "clock": _l("clock set"), "schedule": _l("controller schedule")}
SOURCES = {"strategy": _l("strategies"), "override": _l("operator override"),
           "recovery": _l("recovery after a restart"), "shutdown": _l("BEMS stopped"),
           "cli": _l("command line"), "heartbeat": _l("heartbeat"),
           "release": _l("no longer wanted"), "schedule": _l("controller schedule")}
OUTCOMES = {"done": _l("done"), "unchanged": _l("unchanged"), "rejected": _l("rejected"),
            "failed": _l("failed"), "unconfirmed": _l("unconfirmed"),
            "released": _l("released"), "restored": _l("restored")}


USER_ACTIONS = {
    "login": _l("signed in"), "login.failed": _l("failed sign-in"), "logout": _l("signed out"),
    "forbidden": _l("refused: not allowed for this role"), "alarm.ack": _l("alarm acknowledged"),
    "override.set": _l("override set"), "override.release": _l("override released"),
    "schedule.save": _l("schedule saved"), "exception.add": _l("exception day added"),
    "exception.delete": _l("exception day removed"), "strategies.save": _l("strategies saved"),
    "report.make": _l("report made"), "report.monthly": _l("monthly report made"),
    "user.add": _l("user added"), "user.delete": _l("user deleted"),
    "user.disable": _l("user disabled"), "user.enable": _l("user enabled"),
    "user.password": _l("password changed"), "user.role": _l("role changed"),
    "db.purge": _l("old readings purged"), "fault.update": _l("fault updated"),
}

DETAIL_KEYS = {  # the fields of a user action, as the audit screen shows them
    "address": _l("address"), "month": _l("month"), "year": _l("year"), "file": _l("file"),
    "before": _l("before"), "name": _l("name"), "role": _l("role"), "key": _l("alarm"),
    "id": "#", "point": _l("point"), "value": _l("value"), "schedule": _l("schedule"),
    "day": _l("day"), "kind": _l("kind"), "until": _l("until"), "rule": _l("rule"),
    "target": _l("target"), "status": _l("status"), "assignee": _l("assigned to"),
    "note": _l("note"), "expires_at": _l("until"), "reason": _l("reason"),
}


def detail(d) -> str:
    """A user action's fields as "field: value" in the reader's language (keys we know)."""
    if isinstance(d, str):
        try:
            d = json.loads(d)
        except ValueError:
            return d
    if not isinstance(d, dict):
        return str(d or "")
    parts = []
    for k, v in list(d.items())[:12]:
        if v in (None, "", [], {}):
            continue
        if isinstance(v, (dict, list)):
            v = "…"
        label = DETAIL_KEYS.get(k)
        parts.append(f"{label if label is not None else k}: {str(v)[:80]}")
    return "; ".join(parts)


FAULT_STATUSES = {"open": _l("open"), "acknowledged": _l("acknowledged"),
                  "closed": _l("closed")}


def day(name: str) -> str:
    return str(DAYS.get(name, name))


def season(name: str) -> str:
    return str(SEASONS.get(str(name).strip().lower(), name))


def register(app) -> None:
    for name, fn in (("mode", mode), ("day", day), ("season", season),
                     ("action", lambda a: str(ACTIONS.get(a, a))),
                     ("source", lambda s: str(SOURCES.get(s, s))),
                     ("outcome", lambda o: str(OUTCOMES.get(o, o))),
                     ("user_action", lambda a: str(USER_ACTIONS.get(a, a))),
                     ("fault_status", lambda a: str(FAULT_STATUSES.get(a, a))),
                     ("detail", detail)):
        app.jinja_env.filters[name] = fn

    def _reason(text: str) -> str:
        from webui import ctx

        return reason(text, {z.id: z.name for z in ctx()["site"].zones})
    app.jinja_env.filters["reason"] = _reason
