"""The words our code produces, in the reader's language: modes, the strategies' reasons
(kept in English in the ledger, the one record every tool reads), day and season names,
ledger actions, sources and outcomes, who commands a zone.

A reason is data (bems/reasons.py): parts, each a code and its arguments, rendered from the
one catalogue (bems/locale) by `bems.reasons.render`, as the monthly report does;
tests/test_vietnamese.py fails when a code has no text or no Vietnamese.
"""

from __future__ import annotations

import json

from flask_babel import lazy_gettext as _l

from webui.i18n import at_render, text_lang

MODES = {
    "occupied": _l("working hours"), "idle": _l("working hours, no cooling needed"),
    "early-stop": _l("early stop"), "break": _l("lunch break"), "cooldown": _l("cool-down"),
    "unoccupied": _l("outside working hours"), "override": _l("operator override"),
    "outdoor-air": _l("outdoor air"),
}


def reason(text, zone_names: dict[str, str] | None = None) -> str:
    """A reason in the reader's language (bems/reasons.py renders it from the catalogue)."""
    from bems.reasons import render

    return render(text, text_lang(), zone_names)


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
    "settings.save": _l("settings saved"), "token.create": _l("API token made"),
    "token.revoke": _l("API token revoked"), "token.use": _l("API token used (first call of "
                                                               "the day)"),
}

DETAIL_KEYS = {  # the fields of a user action, as the audit screen shows them
    "address": _l("address"), "month": _l("month"), "year": _l("year"), "file": _l("file"),
    "before": _l("before"), "name": _l("name"), "role": _l("role"), "key": _l("alarm"),
    "id": "#", "point": _l("point"), "value": _l("value"), "schedule": _l("schedule"),
    "day": _l("day"), "kind": _l("kind"), "until": _l("until"), "rule": _l("rule"),
    "target": _l("target"), "status": _l("status"), "assignee": _l("assigned to"),
    "note": _l("note"), "expires_at": _l("until"), "reason": _l("reason"),
    "section": _l("section"), "diff": _l("changes"), "scope": _l("scope"),
    "expires": _l("until"),
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
ALARM_KINDS = {"stale": _l("device without data"), "out_of_band": _l("out of the comfort band"),
               "ac_after_hours": _l("AC after hours"),
               "lights_after_hours": _l("lights after hours"), "clock": _l("controller clock"),
               "policy": _l("setpoint below the floor"), "write": _l("write not confirmed"),
               "sensor": _l("implausible readings"), "runtime_down": _l("BEMS not running"),
               "runtime_stopped": _l("BEMS stopped"),
               "fault": _l("fault"), "backup": _l("backup failed")}
SEVERITY_NAMES = {"info": _l("info"), "warning": _l("warning"), "critical": _l("critical")}
ALARM_STATES = {"open": _l("still open"), "cleared": _l("cleared"),
                "unacknowledged": _l("not acknowledged")}


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
                     ("alarm_kind", lambda a: str(ALARM_KINDS.get(a, a))),
                     ("severity", lambda a: str(SEVERITY_NAMES.get(a, a))),
                     ("alarm_state", lambda a: str(ALARM_STATES.get(a, a))),
                     ("detail", detail)):
        app.jinja_env.filters[name] = at_render(fn)

    def _period_days(p) -> str:
        """A time-of-use period's days as the site file writes them: mon-fri, or sat,sun."""
        from bems.site import WEEKDAYS

        days = sorted(p.days)
        if days and days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
            return f"{WEEKDAYS[days[0]]}-{WEEKDAYS[days[-1]]}"
        return ",".join(WEEKDAYS[d] for d in days)
    app.jinja_env.filters["period_days"] = _period_days

    def _reason(text: str) -> str:
        from webui import ctx

        return reason(text, {z.id: z.name for z in ctx()["site"].zones})
    app.jinja_env.filters["reason"] = at_render(_reason)
