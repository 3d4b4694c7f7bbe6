"""Compile the Vietnamese catalogue (.po → .mo): `python -m devtools.i18n_build`.

The .po (bems/locale) is the source a translator edits; the .mo is what Flask-Babel and
`bems.i18n.tr` read. A test checks that every text of the screens, templates, reasons, alarms,
faults, reports and notifications has a Vietnamese translation and that the .mo is up to date
with the .po. `--unused` lists the catalogue's texts nothing uses any more.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "webui"
PO = ROOT / "bems" / "locale" / "vi" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
# texts passed to _() through a variable
DYNAMIC = ("viewer", "operator", "admin", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
           "Setpoint (°C)", "AC on/off", "Lights on/off")


CITY = ROOT / "city"  # the city's screens share this catalogue (and the shell)
CORE = ROOT / "bems"  # reasons, alarms, faults, reports, notifications: texts marked N_()

KEYWORDS = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2),
            "N_": None}


def used_messages() -> set[str]:
    """Every text given to _() in the screens and templates, extracted by Babel (what
    `pybabel extract` runs: its Python extractor, Jinja2's for the templates)."""
    from babel.messages.extract import extract_from_file
    from jinja2.ext import babel_extract

    found: set[str] = set(DYNAMIC)
    for f in [*HERE.glob("templates/*.html"), *HERE.glob("*.py"),
              *CITY.glob("templates/*.html"), CITY / "web.py", *CORE.rglob("*.py")]:
        method = babel_extract if f.suffix == ".html" else "python"
        for _line, msg, _comments, _context in extract_from_file(method, str(f),
                                                                  keywords=KEYWORDS):
            found.add(msg if isinstance(msg, str) else msg[0])
    return found


def compile_mo() -> bytes:
    with open(PO, "rb") as f:
        catalog = read_po(f, locale="vi")
    MO.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    write_mo(buf, catalog)
    return buf.getvalue()


def main() -> None:
    import sys

    if "--unused" in sys.argv:
        with open(PO, "rb") as f:
            ids = {m.id for m in read_po(f, locale="vi") if m.id}
        used = used_messages()
        for text in sorted(i for i in ids if isinstance(i, str) and i not in used):
            print(text)
        return
    MO.write_bytes(compile_mo())
    print(f"compiled {MO}")


if __name__ == "__main__":
    main()
