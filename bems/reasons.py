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
