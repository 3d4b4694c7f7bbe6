"""Settings from the UI into the site file: comments kept, checked by the loader before anything
is written, atomic with the previous file kept, a concurrent edit refused, audited, admins only,
and the runtime taking the change without a restart."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bems.config import ConfigError, load_site
from bems.sitefile import SettingsError, SiteFile, file_version
from bems.storage import Store
from connectors.memory import MemoryBus
from tests.synthetic import quick_hash
from webui import create_app

NOW = dt.datetime(2026, 7, 7, 2, 30, tzinfo=dt.timezone.utc)
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


@pytest.fixture
def site_copy(site_file, tmp_path):
    path = tmp_path / "site.toml"
    shutil.copy(site_file, path)
    return path


def comments(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


def test_an_edit_keeps_every_comment_and_passes_check_config(site_copy):
    before = site_copy.read_text(encoding="utf-8")
    sf = SiteFile(site_copy)
    sf.zone("f2.p1", name="Phòng Tài chính - Kế toán", occupied_setpoint=25.5,
            setpoint_min=25.0, setpoint_max=28.0)
    sf.meter("lighting", name="Chiếu sáng (tầng 1-3)")
    sf.tariff(0, {"name": "EVN 2026", "valid_from": dt.date(2026, 5, 10), "kind": "flat",
                  "price_vnd_per_kwh": 2305.0, "vat": 0.08})
    sf.tariff(None, {"name": "EVN TOU", "valid_from": dt.date(2026, 9, 1), "kind": "tou",
                     "vat": 0.08, "prices": {"peak": 4000.0, "normal": 2300.0,
                                             "offpeak": 1500.0},
                     "periods": [{"band": "peak", "days": "mon-sat", "start": "09:30",
                                  "end": "11:30"}]})
    site = sf.save(sf.version, NOW)
    after = site_copy.read_text(encoding="utf-8")
    assert comments(after) == comments(before) and len(comments(before)) > 20
    z = next(z for z in site.zones if z.id == "f2.p1")
    assert (z.name, z.occupied_setpoint, z.setpoint_min, z.setpoint_max) == \
        ("Phòng Tài chính - Kế toán", 25.5, 25.0, 28.0)
    assert [t.name for t in site.tariffs] == ["EVN 2026", "EVN TOU"]
    res = subprocess.run([sys.executable, "-m", "bems", "check-config", str(site_copy)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    prev = list(site_copy.parent.glob("site.toml.*.prev"))
    assert len(prev) == 1 and prev[0].read_text(encoding="utf-8") == before


@pytest.mark.parametrize("edit, message", [
    (lambda sf: sf.zone("f1.p1", occupied_setpoint=24.0), "policy floor|25"),
    (lambda sf: sf.zone("f1.p1", setpoint_min=29.0, setpoint_max=26.0), "setpoint"),
    (lambda sf: sf.zone("f1.p1", occupied_setpoint=29.5, setpoint_max=29.0), "within"),
    (lambda sf: sf.zone("f1.p1", setpoint_max=1e300), "10..40"),
    (lambda sf: sf.zone("f1.p1", occupied_setpoint=float("nan")), "finite"),
    (lambda sf: sf.meter("ac", parent="no-such-meter"), "no-such-meter|parent"),
    (lambda sf: sf.tariff(0, {"name": "x", "valid_from": dt.date(2026, 1, 1), "kind": "flat",
                              "price_vnd_per_kwh": -5.0, "vat": 0.08}), "price|positive|> 0"),
    (lambda sf: sf.tariff(0, {"name": "x", "valid_from": dt.date(2026, 1, 1), "kind": "tou",
                              "vat": 0.08, "prices": {"peak": 1.0, "normal": 1.0,
                                                      "offpeak": 1.0},
                              "periods": [{"band": "peak", "days": "someday",
                                           "start": "25:00", "end": "11:30"}]}), "days|time"),
])
def test_an_invalid_edit_writes_nothing(site_copy, edit, message):
    before = site_copy.read_bytes()
    sf = SiteFile(site_copy)
    edit(sf)
    with pytest.raises(ConfigError, match=message):
        sf.save(sf.version, NOW)
    assert site_copy.read_bytes() == before
    assert not list(site_copy.parent.glob("*.prev")) and not list(site_copy.parent.glob(".*tmp"))


def test_a_concurrent_edit_is_refused_not_lost(site_copy):
    a, b = SiteFile(site_copy), SiteFile(site_copy)
    a.zone("f1.p1", name="A's name")
    b.zone("f1.p2", name="B's name")
    a.save(a.version, NOW)
    with pytest.raises(SettingsError) as err:
        b.save(b.version, NOW + dt.timedelta(seconds=1))
    assert err.value.code == "concurrent"
    site = load_site(site_copy)
    names = {z.id: z.name for z in site.zones}
    assert names["f1.p1"] == "A's name" and names["f1.p2"] != "B's name"


def _admin(site, tmp_path, role="admin"):
    db = tmp_path / "s.sqlite"
    with Store(db) as s:
        s.add_user("u1", role, quick_hash(PASSWORD), "en")
    app = create_app(site, db, test_config={"TESTING": True, "SESSION_COOKIE_SECURE": False},
                     clock=lambda: NOW)
    c = app.test_client()
    page = c.get("/login").data
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    c.post("/login", data={"username": "u1", "password": PASSWORD, "csrf_token": csrf})
    return c, db, app


def _form(c, **extra):
    page = c.get("/settings/").data.decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    return {"csrf_token": csrf, "version": version, **extra}


def test_the_settings_screen_previews_saves_audits_and_refuses_stale_pages(site_copy, tmp_path):
    site = load_site(site_copy)
    c, db, app = _admin(site, tmp_path)
    zones = {f"name:{z.id}": z.name for z in site.zones}
    zones.update({f"min:{z.id}": "22" for z in site.zones})
    zones.update({f"max:{z.id}": "30" for z in site.zones})
    zones["name:f3.core"] = "Hội trường lớn"
    zones["sp:f3.core"] = "25,5"  # a Vietnamese decimal comma
    form = _form(c, section="zones", do="preview", **zones)
    r = c.post("/settings/", data=form)
    assert r.status_code == 200
    page = r.data.decode()
    assert "+name = &#34;Hội trường lớn&#34;" in page or '+name = "Hội trường lớn"' in page
    assert site_copy.read_text(encoding="utf-8") == Path(site.source).read_text(encoding="utf-8")
    before = site_copy.read_bytes()
    r = c.post("/settings/", data={**form, "do": "save"})
    assert r.status_code == 302 and site_copy.read_bytes() != before
    assert next(z for z in load_site(site_copy).zones if z.id == "f3.core").occupied_setpoint \
        == 25.5
    assert "Hội trường lớn" in c.get("/zones/").data.decode()  # this process at once
    with Store(db) as s:
        row = s.audit_rows(action="settings.save")[0]
        assert row["user"] == "u1" and "Hội trường lớn" in str(row["detail"])
    # the same (now stale) page saved again: refused, nothing written
    now_bytes = site_copy.read_bytes()
    zones["name:f3.core"] = "Hội trường nhỏ"
    r = c.post("/settings/", data={**form, **zones, "do": "save"})
    assert r.status_code == 409 and site_copy.read_bytes() == now_bytes
    # a setpoint below the floor is refused with the loader's reason
    zones["name:f3.core"] = "Hội trường lớn"
    zones["sp:f3.core"] = "24"
    r = c.post("/settings/", data=_form(c, section="zones", do="save", **zones))
    assert r.status_code == 400 and "nothing was written" in r.data.decode()
    assert site_copy.read_bytes() == now_bytes
    zones["name:f3.core"] = ""  # every zone needs a name
    zones["sp:f3.core"] = "25"
    r = c.post("/settings/", data=_form(c, section="zones", do="save", **zones))
    assert r.status_code == 400 and site_copy.read_bytes() == now_bytes
    zones["name:f3.core"] = "Hội trường lớn"
    for bad in ("nan", "inf", "1e300", "hai mươi"):
        zones["sp:f3.core"] = bad
        r = c.post("/settings/", data=_form(c, section="zones", do="save", **zones))
        assert r.status_code == 400 and site_copy.read_bytes() == now_bytes, bad


def test_only_admins_and_not_the_built_in_demo_file(site_copy, tmp_path):
    site = load_site(site_copy)
    c, _db, _app = _admin(site, tmp_path, role="operator")
    assert c.get("/settings/").status_code == 403
    assert c.post("/settings/", data={"section": "zones"}).status_code in (400, 403)
    demo = load_site()
    c2, _db, _app = _admin(demo, tmp_path / "d", role="admin") if (tmp_path / "d").mkdir() \
        is None else (None, None, None)
    page = c2.get("/settings/").data.decode()
    assert "built into the program" in page
    r = c2.post("/settings/", data=_form(c2, section="meters", do="save"))
    assert r.status_code == 400


def test_the_runtime_takes_a_saved_change_without_a_restart(site_copy, tmp_path):
    from bems.runtime import Runtime

    site = load_site(site_copy)
    rt = Runtime(site, tmp_path / "rt.sqlite", bus=MemoryBus(site), clock=lambda: NOW)
    try:
        assert rt.reload_site() is False  # unchanged
        sf = SiteFile(site_copy)
        sf.zone("f1.p1", setpoint_max=27.0)
        sf.save(sf.version, NOW)
        assert rt.reload_site() is True
        assert next(z for z in rt.site.zones if z.id == "f1.p1").setpoint_max == 27.0
        assert rt.writer.site is rt.site
        site_copy.write_text(site_copy.read_text(encoding="utf-8") + "\n[bogus]\n",
                             encoding="utf-8")
        assert rt.reload_site() is False  # logged; the running settings stay
        assert next(z for z in rt.site.zones if z.id == "f1.p1").setpoint_max == 27.0
        assert file_version(site_copy) == rt._site_version
    finally:
        rt.stop()


def test_a_file_whose_layout_cannot_be_kept_is_not_edited(site_copy):
    text = site_copy.read_text(encoding="utf-8")
    # a [[points]] table after the zones: written back, tomlkit would move it up
    site_copy.write_text(text + '\n[[points]]\nid = "extra.t"\ndevice = "fc1"\n'
                         'object = "analog-value,900"\nkind = "temperature"\n', encoding="utf-8")
    load_site(site_copy)  # a valid site file
    with pytest.raises(SettingsError) as err:
        SiteFile(site_copy)
    assert err.value.code == "layout"


def test_a_site_file_that_cannot_be_written_is_a_clear_error(site_copy):
    # (tests may run as root, who writes anywhere: the lock's name taken by a folder fails
    # the way a read-only folder does)
    (site_copy.parent / f".{site_copy.name}.lock").mkdir()
    before = site_copy.read_bytes()
    sf = SiteFile(site_copy)
    sf.zone("f1.p1", name="x")
    with pytest.raises(SettingsError) as err:
        sf.save(sf.version, NOW)
    assert err.value.code == "unwritable" and "cannot write" in str(err.value)
    assert site_copy.read_bytes() == before


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_a_form_sent_back_unchanged_changes_nothing(site_copy, tmp_path, lang):
    """What the page shows is what it reads back: no thousands separator in a field (a
    Vietnamese "2.226" VND/kWh came back as 2.226), decimal commas read as decimals."""
    site = load_site(site_copy)
    c, _db, _app = _admin(site, tmp_path)
    page = c.get("/").data
    c.post("/lang/" + lang, data={"csrf_token": re.search(
        rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()})
    page = c.get("/settings/").data.decode()
    before = site_copy.read_bytes()
    for form in re.findall(r'<form method="post" action="/settings/".*?</form>', page, re.S):
        fields = {}
        for tag in re.findall(r"<input [^>]*>", form):  # what a browser sends: unescaped
            name = re.search(r'name="([^"]+)"', tag)
            value = re.search(r'value="([^"]*)"', tag)
            if name and value:
                fields[html.unescape(name.group(1))] = html.unescape(value.group(1))
        fields.update((k, html.unescape(v)) for k, v in re.findall(
            r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S))
        for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
            chosen = re.search(r'<option value="([^"]*)" selected', body)
            fields[name] = chosen.group(1) if chosen else \
                re.search(r'<option value="([^"]*)"', body).group(1)
        if fields.get("index") == "new":
            continue
        r = c.post("/settings/", data={**fields, "do": "preview"})
        assert r.status_code == 302, (fields.get("section"), r.data.decode()[-800:])
    assert site_copy.read_bytes() == before
