"""Floor plans a site supplies as SVG: read safely, and reduced to drawing.

An SVG file is a document that can carry scripts, event handlers, links to anywhere and XML
entity bombs. A plan is read with defusedxml (no entities, no external references), must be at
most 1 MB and an <svg>, and is then reduced to the drawing elements it needs: no script,
foreignObject, animation, style sheet, event handler, or reference other than a fragment
(#id) or an embedded PNG/JPEG. Its zones are the elements whose id is "zone-" followed by a
zone id.
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
    _clean(root)
    return root


def _clean(el: ET.Element) -> None:
    for child in list(el):
        if not isinstance(child.tag, str) or _local(child.tag) not in KEEP:
            el.remove(child)
            continue
        _clean(child)
    for name in list(el.attrib):
        local = _local(name).lower()
        value = el.attrib[name]
        if local.startswith("on") or local == "style" and ("url(" in value or
                                                            "expression" in value):
            del el.attrib[name]
        elif local == "href" and not _SAFE_HREF.fullmatch(value.strip()):
            del el.attrib[name]


def zone_elements(root: ET.Element) -> dict[str, ET.Element]:
    """zone id → its element (id="zone-ID")."""
    return {el.get("id")[5:]: el for el in root.iter()
            if isinstance(el.tag, str) and (el.get("id") or "").startswith("zone-")}


ET.register_namespace("", SVG)
ET.register_namespace("xlink", XLINK)
