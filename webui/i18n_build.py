"""Write the Vietnamese catalogue (.po) and compile it (.mo): `python -m webui.i18n_build`.

The .po is the source a translator edits; the .mo is what Flask-Babel reads. A test checks
that every text in the templates and screens has a Vietnamese translation and that the .mo is
up to date with the .po.
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

HERE = Path(__file__).parent
PO = HERE / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
# texts passed to _() through a variable
DYNAMIC = ("viewer", "operator", "admin", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
           "Setpoint (°C)", "AC on/off", "Lights on/off")


def used_messages() -> set[str]:
    found: set[str] = set(DYNAMIC)
    for f in [*HERE.glob("templates/*.html"), *HERE.glob("*.py")]:
        text = f.read_text(encoding="utf-8")
        found |= {m.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
                  for m in re.findall(r'\b_l?\(\s*"((?:[^"\\]|\\.)*)"', text)}
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
    MO.write_bytes(compile_mo())
    print(f"compiled {MO}")


if __name__ == "__main__":
    main()
