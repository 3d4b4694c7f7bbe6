"""Why BEMS wants what it wants, as data: a reason is a list of parts, each a code and its
arguments. `str(reason)` is the English the ledger has always kept (logs, the CLI, the ledger's
text column, every tool that reads it); the web UI renders the parts from its catalogue in the
reader's language (webui/words.py), and the ledger keeps the parts beside the text.

`Reason` is a `str`, so code that logs or compares reasons keeps working; joining two reasons
with `+` keeps both lists of parts. A reason a person typed (an override's note, a CLI write)
is the one part `text`. A code without its English here is refused at once, and a test fails
when a code has no text in the UI's catalogue in either language.
"""

from __future__ import annotations

import json
from string import Formatter
from typing import Any

from bems.formatting import number
from bems.i18n import N_, tr

# code → the English of str(); its fields are the part's arguments (numbers keep their format)
ENGLISH: dict[str, str] = {
    # the rule set (bems/strategies/plan.py)
    "unoccupied": "unoccupied",
    "occupied": "occupied",
    "occupied_period": "occupied {start}-{end}",
    "idle": "occupied, no cooling needed: {temp:.1f} °C is under {limit:.1f} °C",
    "early_stop": "early stop: {temp:.1f} °C + {rate:.1f} K/h stays under {high:g} °C until "
                  "{until}",
    "break": "break until {until}",
    "cooldown_started": "cool-down started {start} for {occupancy} occupancy",
    "zone_cools": "zone at {temp:.1f} °C cools {rate:.1f} K/h",
    "cooldown": "cool-down for {occupancy} occupancy",
    "commissioning": "commissioning day {day:g} of {days:g}: {setpoint:.1f} °C, cool-down "
                     "{lead:g} h before work",
    "commissioning_guard": "commissioning: {temp:.1f} °C not held, cooled to {setpoint:.1f} °C",
    "demand_level": "demand limit level {level} (+{offset:g} K)",
    "setup": "unoccupied: set up",
    "sweep": "sweep: lights off {minutes:g} min after",
    "corridor": "corridor at {percent:g} %",
    "lights_off": "unoccupied: lights off",
    "outdoor_air": "outdoor air for occupied zones ({zones})",
    "free_cooling": "free cooling: outdoor {outdoor:.1f} °C is cooler than the zones",
    "outdoor_air_shut": "no one in the zones it serves: outdoor air shut",
    # a person's override
    "override": "operator override until {until}",
    "override_by": "operator override until {until} by {by}",
    "override_by_note": "operator override until {until} by {by}: {note}",
    # the predictive strategy (bems/predictive/strategy.py)
    "plan_cool": "predictive: cool to {setpoint:.1f} °C",
    "plan_peak": "operative peaks at {peak:.1f} °C at {at} ({free:.1f} °C without cooling)",
    "plan_precool": "predictive: pre-cool to {setpoint:.1f} °C for {at}",
    "plan_would_reach": "operative would reach {free:.1f} °C at {at} without it",
    "plan_off": "predictive: AC off",
    "plan_follow": "predictive: follow the plan",
    "plan_stays_under": "operative stays under {peak:.1f} °C until {until}",
    "plan_off_rest": "predictive: AC off for the rest of the day",
    "plan_off_until": "predictive: AC off until {until}",
    # BEMS itself (bems/control.py, bems/runtime.py)
    "unwanted": "no strategy or override wants it any more",
    "stopped": "BEMS stopped",
    "recovered": "held when BEMS last stopped; released at start",
    "alive": "BEMS is alive",
    "schedule": "the site's schedule and calendar",
    "clock_off": "clock {seconds:+.0f} s off",
    # what a person wrote
    "text": "{text}",
}

# code → its text for a reader (the catalogue's message id, translated in bems/locale); the
# arguments fill %(a)s, %(b)s… in the order of the English's fields (numbers in the reader's
# format, zones by name). A test fails when a code has no text here or no Vietnamese.
TEXTS: dict[str, str] = {
    "unoccupied": N_("outside working hours"),
    "occupied": N_("working hours"),
    "occupied_period": N_("working hours %(a)s–%(b)s"),
    "idle": N_("working hours, no cooling needed: %(a)s °C is under %(b)s °C"),
    "early_stop": N_("early stop: %(a)s °C rising %(b)s K/h stays under %(c)s °C until "
                     "%(d)s"),
    "break": N_("lunch break until %(a)s"),
    "cooldown_started": N_("cool-down started %(a)s for work at %(b)s"),
    "zone_cools": N_("room at %(a)s °C, cooling %(b)s K/h"),
    "cooldown": N_("cool-down for work at %(a)s"),
    "commissioning": N_("commissioning day %(a)s of %(b)s: %(c)s °C, cool-down %(d)s h "
                        "before work"),
    "commissioning_guard": N_("commissioning: %(a)s °C not held, cooled to %(b)s °C"),
    "demand_level": N_("peak demand level %(a)s (setpoint +%(b)s K)"),
    "setup": N_("outside working hours: setpoint set up"),
    "sweep": N_("lights off %(a)s min after work"),
    "corridor": N_("corridor at %(a)s %%"),
    "lights_off": N_("outside working hours: lights off"),
    "outdoor_air": N_("outdoor air for the occupied zones (%(a)s)"),
    "free_cooling": N_("free cooling: outdoor air at %(a)s °C is cooler than the rooms"),
    "outdoor_air_shut": N_("nobody in the zones it serves: outdoor air shut"),
    "override": N_("operator override until %(a)s"),
    "override_by": N_("operator override until %(a)s by %(b)s"),
    "override_by_note": N_("operator override until %(a)s by %(b)s: %(c)s"),
    "plan_cool": N_("plan: cool to %(a)s °C"),
    "plan_peak": N_("felt temperature at most %(a)s °C at %(b)s (%(c)s °C without "
                    "cooling)"),
    "plan_precool": N_("plan: pre-cool to %(a)s °C for work at %(b)s"),
    "plan_would_reach": N_("without it the felt temperature would reach %(a)s °C at "
                           "%(b)s"),
    "plan_off": N_("plan: AC off"),
    "plan_follow": N_("plan: hold the planned temperature"),
    "plan_stays_under": N_("felt temperature stays under %(a)s °C until %(b)s"),
    "plan_off_rest": N_("plan: AC off for the rest of the day"),
    "plan_off_until": N_("plan: AC off until %(a)s"),
    "unwanted": N_("no strategy or override wants it any more"),
    "stopped": N_("BEMS stopped"),
    "recovered": N_("held when BEMS last stopped; released at start"),
    "alive": N_("BEMS is alive"),
    "schedule": N_("the site's schedule and calendar"),
    "clock_off": N_("clock %(a)s s off"),
    "text": "%(a)s",  # what a person wrote, as written
}


Part = tuple[str, dict[str, Any]]
MAX_TEXT = 500  # characters of a person's text a reason keeps


def fields(code: str) -> list[tuple[str, str]]:
    """The arguments of a code's English, in order, with their format spec ('.1f', 'g', '')."""
    return [(name, spec or "") for _, name, spec, _ in Formatter().parse(ENGLISH[code])
            if name is not None]


def _checked(code: str, args: dict[str, Any]) -> dict[str, Any]:
    if code not in ENGLISH:
        raise ValueError(f"unknown reason code {code!r} (bems/reasons.py ENGLISH)")
    names = {n for n, _ in fields(code)}
    if set(args) != names:
        raise ValueError(f"reason {code}: arguments {sorted(args)}, expected {sorted(names)}")
    out = {}
    for name, spec in fields(code):
        v = args[name]
        if spec:  # a number
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"reason {code}: {name} must be a number, not {v!r}")
            out[name] = float(v) if spec.endswith("f") else v
        else:
            out[name] = str(v)[:MAX_TEXT]
    return out


class Reason(str):
    """A reason: its English text (the str) and its parts (`.parts`)."""

    parts: tuple[Part, ...]

    def __new__(cls, *parts: Part) -> "Reason":
        checked = tuple((code, _checked(code, dict(args))) for code, args in parts)
        obj = super().__new__(cls, "; ".join(ENGLISH[c].format(**a) for c, a in checked))
        obj.parts = checked
        return obj

    def __add__(self, other: str) -> str:
        if isinstance(other, Reason):
            return Reason(*self.parts, *other.parts)
        return str(self) + other

    def __reduce__(self):
        return (Reason, self.parts)

    def codes(self) -> list[str]:
        return [c for c, _ in self.parts]

    def replace_code(self, old: str, new: str) -> "Reason":
        """The same reason with the part `old` (no arguments) replaced by `new`."""
        return Reason(*((new if c == old else c, a) for c, a in self.parts))

    def to_json(self) -> str:
        return json.dumps([[c, a] for c, a in self.parts], ensure_ascii=False)


def reason(code: str, **args: Any) -> Reason:
    """One part: `reason("break", until="12:00")`."""
    return Reason((code, args))


def as_reason(value: str | None) -> Reason | None:
    """A reason from anything given as one: a Reason as is, a person's text as `text`."""
    if value is None or isinstance(value, Reason):
        return value
    return reason("text", text=str(value))


def from_ledger(text: str | None, parts_json: str | None) -> str | None:
    """What the ledger kept: the Reason again when its parts were stored (and still known),
    else the text as written (rows from before reasons were data)."""
    if not parts_json:
        return text
    try:
        return Reason(*((c, a) for c, a in json.loads(parts_json)))
    except (ValueError, TypeError):
        return text


def _arg(value, spec: str, name: str, lang: str, zone_names: dict[str, str]) -> str:
    if spec:  # a number, with the decimals of the English
        v = float(value)
        digits = (int(spec.split(".")[1][:-1] or 0) if spec.endswith("f") and "." in spec
                  else 0 if v.is_integer() else 1)
        return ("+" if spec.startswith("+") and v > 0 else "") + number(v, lang, digits)
    if name == "zones":
        return ", ".join(zone_names.get(z, z) for z in str(value).split(", "))
    return str(value)


def render(text, lang: str, zone_names: dict[str, str] | None = None) -> str:
    """A reason in `lang` (vi, en): a `Reason`'s parts from the catalogue; any other text (a
    ledger row from before reasons were data, a person's words) as it was written."""
    parts = getattr(text, "parts", None)
    if not parts:
        return str(text or "")
    out = []
    for code, args in parts:
        template = TEXTS.get(code)
        if template is None:  # a code this BEMS does not know (a newer one wrote it)
            return str(text)
        values = {key: _arg(args[name], spec, name, lang, zone_names or {})
                  for key, (name, spec) in zip("abcdefgh", fields(code))}
        out.append((tr(lang, template) if code != "text" else template) % values)
    return "; ".join(out)
