"""Floor plans: each floor drawn from the site file's zones, coloured by temperature against
the comfort band, with AC and lights, each zone a link to its page.

A floor whose zones are the classic core-and-perimeter set (`*.core`, `*.p1`…`*.p4`: south,
east, north, west, as in the energy model) is drawn as that plan; any other floor as a grid in
the site file's order. Server-side SVG: no script needed to read it; the values in it move with
the zones' live values (static/live.js)."""

from __future__ import annotations

import textwrap

from markupsafe import Markup, escape

W, H, DEPTH = 420, 260, 60
COLOURS = {"cold": "#9dc3e6", "ok": "#a9d18e", "warm": "#f4b183", "hot": "#e06666",
           "none": "#d9d9d9"}


def band(temp: float | None, low: float, high: float) -> str:
    if temp is None:
        return "none"
    if temp < low:
        return "cold"
    if temp <= high:
        return "ok"
    return "warm" if temp <= high + 1.0 else "hot"


def name_lines(name: str, width: float) -> tuple[int, list[str]]:
    """A zone's name as it fits a box `width` wide: its font size and its lines, wrapped at
    words (up to four lines in a box under 100 wide, two under 200, one in a wider one), and
    "…" where that does not hold it."""
    size, most = (11, 1) if width >= 200 else (11, 2) if width >= 100 else (9, 4)
    chars = max(4, int((width - 6) / (size * 0.5)))
    lines = textwrap.wrap(" ".join(name.split()), chars) or [""]
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][:chars - 1].rstrip() + "…"
    return size, lines


def _rects(zones: list) -> dict[str, tuple[float, float, float, float]]:
    ends = {z.id.rsplit(".", 1)[-1]: z.id for z in zones}
    if set(ends) == {"core", "p1", "p2", "p3", "p4"}:
        return {ends["p3"]: (0, 0, W, DEPTH), ends["p1"]: (0, H - DEPTH, W, DEPTH),
                ends["p4"]: (0, DEPTH, DEPTH, H - 2 * DEPTH),
                ends["p2"]: (W - DEPTH, DEPTH, DEPTH, H - 2 * DEPTH),
                ends["core"]: (DEPTH, DEPTH, W - 2 * DEPTH, H - 2 * DEPTH)}
    cols = max(1, min(4, len(zones)))
    rows = -(-len(zones) // cols)
    w, h = W / cols, H / max(rows, 1)
    return {z.id: ((i % cols) * w, (i // cols) * h, w, h) for i, z in enumerate(zones)}


def floor_svg(zones: list, rows: dict, low: float, high: float, href, labels: dict,
              fmt=lambda v: f"{v:.1f}") -> Markup:
    """`rows`: zone id → its zone_rows entry; `href(zone_id)` its page; `labels`: translated
    words ("AC", "lights", "no data"); `fmt` a number in the reader's language."""
    out = [f'<svg class="floorplan" viewBox="-2 -2 {W + 4} {H + 4}" role="img" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for zid, (x, y, w, h) in _rects(zones).items():
        z = next(z for z in zones if z.id == zid)
        r = rows.get(zid, {})
        temp = r.get("temp")
        b = band(temp, low, high)
        t = f"{fmt(temp)} °C" if temp is not None else labels["none"]
        state = " · ".join(s for s, on in ((labels["ac"], r.get("ac")),
                                           (labels["light"], r.get("light"))) if on)
        size, lines = name_lines(z.name, w)
        top = y + h / 2 - 8 - (len(lines) - 1) * (size + 1)
        name = "".join(f'<tspan x="{x + w / 2:.0f}" y="{top + i * (size + 1):.0f}">'
                       f'{escape(line)}</tspan>' for i, line in enumerate(lines))
        out.append(
            f'<a href="{escape(href(zid))}" id="plan-{escape(zid)}" class="zone band-{b}">'
            f'<title>{escape(z.name)}: {escape(t)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" '
            f'fill="{COLOURS[b]}" stroke="#333" stroke-width="1.5"/>'
            f'<text text-anchor="middle" font-size="{size}" class="name">{name}</text>'
            f'<text x="{x + w / 2:.0f}" y="{y + h / 2 + 8:.0f}" text-anchor="middle" '
            f'font-size="13" font-weight="bold" data-live="zone:{escape(zid)}:temp" '
            f'data-unit="°C">{escape(t)}</text>'
            f'<text x="{x + w / 2:.0f}" y="{y + h / 2 + 22:.0f}" text-anchor="middle" '
            f'font-size="10">{escape(state)}</text></a>')
    out.append("</svg>")
    return Markup("".join(out))


def site_svg(path, zones: list, rows: dict, low: float, high: float, href, labels: dict,
             fmt=lambda v: f"{v:.1f}") -> Markup:
    """A plan the site drew (bems.plans cleans it): each zone element (id "zone-ID") filled by
    its band, wrapped in a link to its page, with its name and temperature as a tooltip and
    a live label; zones the drawing lacks are listed under it."""
    import xml.etree.ElementTree as ET

    from bems.plans import SVG, PlanError, check_plan, zone_elements

    try:
        root = check_plan(path)
    except PlanError as err:
        return Markup(f'<p class="flash error">{escape(str(err))}</p>')
    parents = {child: parent for parent in root.iter() for child in parent}
    found = zone_elements(root)
    names = {z.id: z for z in zones}
    for zid, el in found.items():
        z = names.get(zid)
        parent = parents.get(el)
        if z is None or parent is None:
            continue
        r = rows.get(zid, {})
        temp = r.get("temp")
        b = band(temp, low, high)
        el.set("fill", COLOURS[b])
        t = f"{fmt(temp)} °C" if temp is not None else labels["none"]
        link = ET.Element(f"{{{SVG}}}a", {"href": href(zid), "id": f"plan-{zid}",
                                          "class": f"zone band-{b}"})
        title = ET.SubElement(link, f"{{{SVG}}}title")
        title.text = f"{z.name}: {t}"
        index = list(parent).index(el)
        parent.remove(el)
        link.append(el)
        parent.insert(index, link)
    root.set("class", "floorplan")
    root.set("role", "img")
    missing = [names[z].name for z in names if z not in found]
    note = (f'<p class="muted">{escape(labels.get("missing", ""))}: '
            f'{escape(", ".join(missing))}</p>') if missing else ""
    return Markup(ET.tostring(root, encoding="unicode") + note)
