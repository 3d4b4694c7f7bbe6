"""Every screen in Vietnamese, as each role, has no English from our code in it: modes,
reasons, priorities, day and season names, units, form errors.

English from our code = the words of every English message in the catalogue and of the
strategies' reasons (bems/strategies/plan.py). Site data (the names a site gives its zones,
points and devices) is the site's own language and is not checked; product names and
abbreviations (BEMS, CSV, kWh…) are allowed.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from tests.test_webui import _app, _login, _token, web_db  # noqa: F401 (a fixture)

ROOT = Path(__file__).parent.parent
# "English": the language switch names each language in itself (as every multilingual site does)
ALLOWED = {"english", "bems", "ipmvp", "csv", "pdf", "xlsx", "html", "bacnet", "admin", "viewer",
           "operator", "ashrae", "ieee", "json", "mqtt", "utc", "wcag", "evn", "vnd", "svg",
           "webhook"}
PAGES = ("/", "/zones/", "/zones/f2.p1", "/zones/f1.core", "/schedules/", "/schedules/office", "/overrides/", "/strategies/",
         "/trends/", "/trends/?point=f2.p1.temp&days=2", "/forecasts/", "/alarms/",
         "/alarms/history", "/alarms/history?state=open&severity=critical",
         "/reports/", "/audit/", "/users/", "/settings/", "/faults/", "/faults/?all=1",
         "/faults/1")


def english_vocabulary() -> set[str]:
    from babel.messages.pofile import read_po

    with open(ROOT / "bems/locale/vi/LC_MESSAGES/messages.po", "rb") as f:
        ids = [m.id for m in read_po(f, locale="vi") if m.id]
    texts = [i if isinstance(i, str) else " ".join(i) for i in ids]
    plan = (ROOT / "bems/strategies/plan.py").read_text(encoding="utf-8")
    texts += re.findall(r'f?"([^"]*)"', plan)
    predictive = (ROOT / "bems/predictive/strategy.py").read_text(encoding="utf-8")
    texts += re.findall(r'f"([^"]*)"', predictive) + re.findall(r'"(predictive:[^"]*)"',
                                                                 predictive)
    from bems.faults.texts import TEXTS, WORDS

    texts += [v for t in TEXTS.values() for v in t.values()]  # fault texts
    texts += list(WORDS.values())
    words = {w.lower() for t in texts for w in re.findall(r"[A-Za-z]{4,}", t)}
    words |= {"mon", "tue", "wed", "thu", "fri", "sat", "sun", "summer", "winter", "year"}
    return words - ALLOWED


def site_words(site) -> set[str]:
    names = [site.name] + [z.name for z in site.zones] + [p.name for p in site.points]
    names += [d.name for d in site.devices] + [m.name for m in site.meters]
    names += [b.name for b in site.buildings] + [s.name for s in site.schedules]
    names += [t.name for t in site.tariffs]
    # ids are the site's too (a meter "main", a zone "f1.core")
    for group in (site.zones, site.points, site.devices, site.meters, site.buildings):
        names += [x.id for x in group]
    return {w.lower() for n in names for w in re.findall(r"[A-Za-z]{4,}", n or "")}


def visible_text(page: str) -> str:
    page = re.sub(r"(?is)<(script|style|code)\b.*?</\1>", " ", page)  # <code>: a command
    attrs = " ".join(re.findall(r'(?:title|placeholder|aria-label|alt)="([^"]*)"', page))
    return html.unescape(re.sub(r"<[^>]+>", " ", page) + " " + attrs)


def english_in(text: str, vocab: set[str], site: set[str]) -> set[str]:
    text = re.sub(r"\[[a-z_]+\]", " ", text)  # a site-file table named as it is: [strategies]
    text = re.sub(r"\b[a-z]+(?:_[a-z]+)+\b", " ", text)  # and a key in it: baseline_from
    text = re.sub(r"(?<![\w])/[\w/.\-]*", " ", text)  # a page's address (/schedules/office)
    words = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)}
    # day abbreviations are three letters: "mon, tue: 07:30" is English too (but "thu nhỏ" is
    # Vietnamese: only a day in a list counts)
    words |= {w.lower() for w in re.findall(r"\b(mon|tue|wed|thu|fri|sat|sun)\b(?=\s*[,:–-])",
                                             text, re.I)}
    return (words & vocab) - site


@pytest.mark.parametrize("user", ["viewer1", "op1", "admin1"])
def test_every_screen_in_vietnamese_has_no_english_from_our_code(site, web_db, user):
    client = _app(site, web_db).test_client()
    _login(client, user)
    page = client.get("/").data
    assert client.post("/lang/vi", data={"csrf_token": _token(page)}).status_code == 302
    vocab, own = english_vocabulary(), site_words(site)
    found = {}
    for path in PAGES:
        r = client.get(path)
        if r.status_code in (403, 404):
            continue
        assert r.status_code == 200, path
        bad = english_in(visible_text(r.data.decode()), vocab, own)
        if bad:
            found[path] = sorted(bad)
    assert found == {}


def test_form_errors_in_vietnamese(site, web_db):
    client = _app(site, web_db, csrf=False).test_client()
    _login(client, "admin1")
    client.post("/lang/vi")
    vocab, own = english_vocabulary(), site_words(site)
    r = client.post("/strategies/", data={"occupied_setpoint": "nan", "max_lead_h": "1e300",
                                          "break_ac": "<script>", "peak_target_kw": "-5"})
    assert r.status_code == 400
    assert english_in(visible_text(r.data.decode()), vocab, own) == set()


def test_every_reason_the_strategies_give_reads_in_vietnamese(site, web_db):
    """The planner's reasons through a working day (cool-down, occupied, lunch, early stop,
    lights sweep, outdoor air, overrides): each one rendered in Vietnamese has no English."""
    import datetime as dt

    from flask_babel import force_locale

    from bems.decision import decide
    from bems.overrides import add_override
    from bems.storage import Store
    from webui.words import mode, reason

    app = _app(site, web_db)
    vocab, own = english_vocabulary(), site_words(site)
    zone_names = {z.id: z.name for z in site.zones}
    seen, bad = set(), {}
    with Store(web_db) as store:
        day = dt.datetime(2026, 7, 7, tzinfo=site.tz)
        add_override(site, store, "f2.p1.light", 0.0, day + dt.timedelta(hours=10),
                     "admin1", "họp", day + dt.timedelta(hours=9, minutes=31))
        for minutes in range(5 * 60, 20 * 60, 10):
            for z in decide(site, store, day + dt.timedelta(minutes=minutes)).zones:
                seen.add(z.mode)
                for i in z.intents:
                    seen.add(i.reason.split(" ")[0])
                    with app.test_request_context(), force_locale("vi"):
                        text = reason(i.reason, zone_names) + " " + mode(z.mode)
                    words = english_in(text, vocab, own)
                    if words:
                        bad[i.reason] = sorted(words)
    assert bad == {}
    # the day really went through the modes whose reasons are checked
    assert {"cooldown", "occupied", "unoccupied", "outdoor-air", "override"} <= seen, seen


def test_every_reason_of_the_predictive_strategy_reads_in_vietnamese(site, web_db,
                                                                     synthetic_model):
    """The predictive plan's reasons through a working day (pre-cool, cool, off, the rest of
    the day), and why the rule set would decide instead: no English in Vietnamese."""
    import datetime as dt

    import numpy as np
    from flask_babel import force_locale

    from bems.calendar import SiteCalendar
    from bems.predictive import strategy as predictive
    from bems.predictive.model import STEP_S, History
    from bems.strategies.plan import Learned
    from webui.strategies import NOTES, note_text
    from webui.words import mode, reason

    app = _app(site, web_db)
    vocab, own = english_vocabulary(), site_words(site)
    names = {z.id: z.name for z in site.zones}
    h, model = synthetic_model
    cal = SiteCalendar(site)
    seen, bad = set(), {}
    for minutes in range(4 * 60, 18 * 60, 60):
        local = dt.datetime(2026, 7, 3) + dt.timedelta(minutes=minutes)
        aware = local.replace(tzinfo=site.tz)
        k = int((aware.timestamp() - h.t0) // STEP_S)
        sub = History(h.t0 + (k - 192) * STEP_S, 193,
                      {p: v[k - 192:k + 1] for p, v in h.mean.items()})
        values = {p: float(v[k]) for p, v in h.mean.items()}
        for w in (0, 100):
            s2 = __import__("dataclasses").replace(site, strategies=__import__(
                "dataclasses").replace(site.strategies, comfort_weight=w))
            out = predictive.decide(s2, cal, values, local, aware, Learned(), 0, None, model,
                                    predictive.mass_now(site, model, sub),
                                    np.asarray(h.mean["outdoor.temp"][k:k + 96]))
            for z in out.decisions:
                for i in z.intents:
                    seen.add(i.reason.split(";")[0][:30])
                    with app.test_request_context(), force_locale("vi"):
                        text = reason(i.reason, names) + " " + mode(z.mode)
                    words = english_in(text, vocab, own)
                    if words:
                        bad[i.reason] = sorted(words)
    with app.test_request_context(), force_locale("vi"):
        for code in NOTES:
            words = english_in(note_text(f"{code}: f1.p1", names), vocab, own)
            if words:
                bad[code] = sorted(words)
    assert bad == {}
    for start in ("predictive: pre-cool to", "predictive: AC off until", "predictive: cool to"):
        assert any(s.startswith(start) for s in seen), (start, seen)


@pytest.mark.skipif(__import__("shutil").which("pdftotext") is None, reason="poppler-utils")
def test_the_vietnamese_monthly_report_has_no_english_from_our_code(site, web_db, tmp_path):
    import subprocess

    from bems.reports.monthly import build_monthly
    from bems.reports.render import TEXT, render
    from bems.storage import Store
    from models.savings import option_c

    vocab = english_vocabulary() | {w.lower() for v in TEXT.values()
                                    for w in re.findall(r"[A-Za-z]{4,}", v)}
    # the model's name and fit statistics are proper names and abbreviations
    vocab -= {"towt", "lbnl", "rmse", "nmbe", "ipmvp", "option"}
    with Store(web_db) as store:
        r = build_monthly(site, store, "2026-07", option_c)
    pdf = render(r, "pdf", tmp_path, "vi")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert english_in(text, vocab, site_words(site)) == set()


def test_every_reason_code_has_its_text_in_both_languages(site, web_db):
    """A reason is a code and its arguments (bems/reasons.py); the UI's catalogue has a text for
    every code, Vietnamese different from English, and the ledger gives the parts back."""
    from flask_babel import force_locale

    from bems.reasons import ENGLISH, Reason, fields, reason as make
    from bems.storage import Store
    from bems.reasons import TEXTS
    from webui.words import reason

    assert set(TEXTS) == set(ENGLISH), set(TEXTS) ^ set(ENGLISH)
    app = _app(site, web_db)
    sample = {"": "07:30", "g": 2, ".1f": 26.25, "+.0f": -12}
    for code in ENGLISH:
        args = {name: sample.get(spec, "x") for name, spec in fields(code)}
        r = make(code, **args)
        with app.test_request_context():
            with force_locale("vi"):
                vi = reason(r)
            with force_locale("en"):
                en = reason(r)
        assert "%(" not in vi + en and vi and en, code
        if code != "text":
            assert vi != en, f"{code}: no Vietnamese for {en!r}"
        if ".1f" in {spec for _, spec in fields(code)}:
            assert "26,2" in vi or "26,3" in vi, vi  # numbers in the reader's format
    two = make("break", until="12:00") + make("demand_level", level=2, offset=1.0)
    assert str(two) == "break until 12:00; demand limit level 2 (+1 K)"
    with Store(web_db) as store:
        store.record_write(point="f1.p1.sp", action="write", value=26.0, priority=12,
                           source="strategy", reason=two, outcome="done")
        store.record_write(point="f1.p1.sp", action="write", value=26.0, priority=12,
                           source="cli", reason="a person's words", outcome="done")
        typed, old = store.writes(point="f1.p1.sp", limit=2)[::-1]
    assert isinstance(typed.reason, Reason) and typed.reason.parts == two.parts
    assert typed.reason == str(two) and old.reason == "a person's words"
    with pytest.raises(ValueError, match="unknown reason code"):
        make("no_such_code")
