"""The centre as the city registers it, and what in a site file the city would refuse.

The registry entry (`site` messages) is built from the site file; `problems` runs it, and the
ids every message carries, through the city's own rules (`bems.portfolio.schema`), so
`bems check-config` refuses a site file whose messages the city would refuse (a refused
registry entry would otherwise hold up every message after it)."""

from __future__ import annotations

from bems.portfolio.schema import ID_RE, PayloadError, check
from bems.site import Site


def registry(s: Site) -> dict:
    """The centre as the city registers it: from its site file."""
    outdoor = next((p.id for p in s.points if p.kind == "outdoor_temperature"), None)
    return {"name": s.name[:200], "timezone": s.timezone,
            "organisation": (s.reports.organisation or s.name)[:200],
            "floor_area_m2": float(s.floor_area_m2), "staff": int(s.reports.staff),
            "points": len(s.points),
            "meters": [{"id": m.id, "name": m.name[:200], "measures": m.measures[:40],
                        "parent": m.parent} for m in s.meters],
            "outdoor": outdoor}


_FIELD = {"name": ("site", "name"), "timezone": ("site", "timezone"),
          "organisation": ("reports", "organisation"), "staff": ("reports", "staff"),
          "floor_area_m2": ("buildings", 0, "floor_area_m2"), "meter": ("meters",)}


def problems(s: Site) -> list[tuple[tuple, str]]:
    """(field path, message) of everything in the site file the city would refuse."""
    out: list[tuple[tuple, str]] = []
    try:
        check("site", registry(s))
    except PayloadError as err:
        detail = str(err).partition(": ")[2] or err.code
        out.append((_FIELD.get(detail, ("site",)), "the city portfolio refuses it: "
                    + {"name": "a name of printable characters, not empty",
                       "timezone": "a time zone the tz database knows",
                       "organisation": "printable characters, at most 200",
                       "staff": "a whole number of staff, 0 or more",
                       "floor_area_m2": "a floor area of at least 1 m²",
                       "meter": "meters need ids of letters, digits and . _ : -"}.get(
                           detail, detail)))
    for kind, items in (("devices", s.devices), ("points", s.points), ("meters", s.meters)):
        for i, it in enumerate(items):
            if not ID_RE.fullmatch(it.id):
                out.append(((kind, i, "id"), "the city portfolio refuses this id: 1..80 "
                            "letters a-z, digits and . _ : - (no spaces, no Vietnamese "
                            "letters)"))
    return out
