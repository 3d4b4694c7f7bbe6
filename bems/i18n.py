"""One catalogue per language for every text BEMS writes for a person: the web UI's screens,
the strategies' reasons, the alarms, the faults, the reports and the notifications.

The catalogue is gettext's: English texts are the message ids, `bems/locale/vi/LC_MESSAGES/
messages.po` their Vietnamese (compiled to `.mo` by `python -m devtools.i18n_build`, which also
extracts every text with Babel, the way `pybabel extract` does). The web UI reads it through
Flask-Babel; the core (reports, notifications, the CLI) through `tr`. A text that is kept in a
table and translated later is marked with `N_` so the extractor finds it.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"


def N_(text: str) -> str:
    """Marks a text for the catalogue; it is translated where it is shown."""
    return text


def lang_of(lang: str | None) -> str:
    """vi or en (anything else: English)."""
    return "vi" if str(lang or "").startswith("vi") else "en"


@lru_cache(maxsize=None)
def catalogue(lang: str) -> gettext.NullTranslations:
    if lang_of(lang) == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, str(LOCALE_DIR), languages=[lang_of(lang)],
                               fallback=True)


def tr(lang: str | None, text: str) -> str:
    """`text` (an English message id) in `lang`; the English when it has no translation."""
    return catalogue(lang_of(lang)).gettext(text) if text else text
