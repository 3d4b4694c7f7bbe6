"""Floor plans a site supplies as SVG: read safely, and reduced to drawing.

An SVG file is a document that can carry scripts, event handlers, links to anywhere and XML
entity bombs. A plan is read with defusedxml (no entities, no external references), must be at
most 1 MB, 64 levels deep and 50,000 elements, and an <svg>, and is then reduced to the
drawing elements it needs: no script, foreignObject, animation, style sheet, event handler,
class, or reference other than a fragment (#id, url(#id)) or an embedded PNG/JPEG; a style
keeps only how things are painted (fill, stroke, opacity, fonts), never where a box goes on
the page (a plan drawn as a full-page overlay over the UI). Its zones are the elements whose
id is "zone-" followed by a zone id.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from bems.errors import BemsError

MAX_BYTES = 1_000_000
SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
KEEP = {"svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text",
        "tspan", "title", "desc", "defs", "use", "symbol", "image", "clipPath", "mask",
        "linearGradient", "radialGradient", "stop", "pattern", "marker"}
_SAFE_HREF = re.compile(r"#[\w.\-]+|data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]+")
_URL = re.compile(r"url\s*\(\s*(['\"]?)(.*?)\1\s*\)", re.I | re.S)
MAX_DEPTH = 64
MAX_ELEMENTS = 50_000
# style properties that paint, nothing that places a box on the page
STYLE_KEEP = {"fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
              "stroke-dasharray", "stroke-linecap", "stroke-linejoin", "opacity", "font-size",
              "font-family", "font-weight", "font-style", "text-anchor", "dominant-baseline",
              "stop-color", "stop-opacity", "visibility"}
# attributes that place the drawing itself in the page: only the plan's own viewBox counts
DROP_ATTRS = {"class", "style-src", "x-frame-options"}


class PlanError(BemsError):
    """A floor plan that cannot be used."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def check_plan(path: Path) -> ET.Element:
    """The plan's cleaned tree; PlanError says why it cannot be used."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise PlanError(f"cannot read the plan {path}: {err.strerror}") from None
    if len(data) > MAX_BYTES:
        raise PlanError(f"the plan {Path(path).name} is larger than 1 MB")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, ET.ParseError, ValueError) as err:
        raise PlanError(f"the plan {Path(path).name} is not a safe SVG file: "
                        f"{str(err)[:120]}") from None
    if _local(root.tag) != "svg":
        raise PlanError(f"the plan {Path(path).name} is not an SVG drawing")
    _check_shape(root, Path(path).name)
    _clean(root)
    for name in ("width", "height", "x", "y"):  # the page sizes the plan, by its viewBox
        root.attrib.pop(name, None)
    return root


def _check_shape(root: ET.Element, name: str) -> None:
    """Depth and size, without recursion (a plan nested 100,000 deep must be an error, not a
    crash of the page that shows it)."""
    count, stack = 0, [(root, 1)]
    while stack:
        el, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_ELEMENTS:
            raise PlanError(f"the plan {name} is nested deeper than {MAX_DEPTH} levels or has "
                            f"more than {MAX_ELEMENTS:,} elements")
        stack.extend((child, depth + 1) for child in el)


def _safe_style(value: str) -> str:
    keep = []
    for decl in value.split(";"):
        prop, sep, val = decl.partition(":")
        prop, val = prop.strip().lower(), val.strip()
        if sep and prop in STYLE_KEEP and _urls_ok(val) and "expression" not in val.lower() \
                and "\\" not in val and "@" not in val:
            keep.append(f"{prop}: {val}")
    return "; ".join(keep)


def _urls_ok(value: str) -> bool:
    """Every url(...) in a value points inside the plan (#id)."""
    return all(re.fullmatch(r"#[\w.\-]+", m.group(2).strip())
               for m in _URL.finditer(value)) and \
        value.lower().count("url") == len(_URL.findall(value))


def _clean(el: ET.Element) -> None:
    for child in list(el):
        if not isinstance(child.tag, str) or _local(child.tag) not in KEEP:
            el.remove(child)
            continue
        _clean(child)
    for name in list(el.attrib):
        local = _local(name).lower()
        value = el.attrib[name]
        if local.startswith("on") or local in DROP_ATTRS:
            del el.attrib[name]
        elif local == "style":
            style = _safe_style(value)
            if style:
                el.attrib[name] = style
            else:
                del el.attrib[name]
        elif local == "href":
            if not _SAFE_HREF.fullmatch(value.strip()):
                del el.attrib[name]
        elif not _urls_ok(value):  # fill="url(https://…)", filter, mask, clip-path…
            del el.attrib[name]


def zone_elements(root: ET.Element) -> dict[str, ET.Element]:
    """zone id → its element (id="zone-ID")."""
    return {el.get("id")[5:]: el for el in root.iter()
            if isinstance(el.tag, str) and (el.get("id") or "").startswith("zone-")}


ET.register_namespace("", SVG)
ET.register_namespace("xlink", XLINK)
