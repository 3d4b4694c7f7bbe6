"""Settings (admins): zones, meters, tariffs and notification recipients, written into the site
file (bems/sitefile.py: comments kept, checked by the site-file loader first, atomic, the
previous version kept, a concurrent edit refused). Every change is previewed as the lines of
the site file it changes, then saved and audited; the runtime takes it within 30 s."""

from __future__ import annotations

import datetime as dt
import math

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.config import ConfigError
from bems.config import demo_site_path
from bems.site import SEVERITIES
from bems.sitefile import UNCHANGED, SettingsError, SiteFile, file_version
from webui import ctx, now, store
from webui.auth import requires

bp = Blueprint("settings", __name__, url_prefix="/settings")
SECTIONS = ("zones", "meters", "tariff", "recipient")


def _editable() -> tuple[bool, str]:
    site = ctx()["site"]
    src = site.source
    if src is None or src.resolve() == demo_site_path().resolve():
        return False, _("These settings come from the site file built into the program; "
                        "start BEMS with a site file of its own to edit them here.")
    return True, ""


class FormError(Exception):
    pass


def _number(text: str, label: str) -> float | None:
    text = (text or "").strip().replace(",", ".")
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        raise FormError(_("%(field)s: give a number.", field=label)) from None
    if not math.isfinite(v) or abs(v) > 1e9:
        raise FormError(_("%(field)s: give a number.", field=label))
    return v


def _text(name: str, limit: int = 200) -> str:
    return (request.form.get(name) or "").strip()[:limit]


def _apply(sf: SiteFile, form) -> str:
    """The form's edit on the site file; returns the section edited."""
    site = ctx()["site"]
    section = form.get("section", "")
    if section == "zones":
        for z in site.zones:
            name = _text(f"name:{z.id}")
            if not name and form.get(f"name:{z.id}") is not None:
                raise FormError(_("Every zone needs a name."))
            # a value as it is (the default shown included), or a field not sent, is left as
            # it is in the file; an emptied field is removed (its default applies)
            new = {k: UNCHANGED if form.get(f"{f}:{z.id}") is None else
                   _number(form.get(f"{f}:{z.id}"), z.name)
                   for k, f in (("occupied_setpoint", "sp"), ("setpoint_min", "min"),
                                ("setpoint_max", "max"))}
            sf.zone(z.id, name=name if name and name != z.name else None,
                    **{k: v if v is UNCHANGED or v != getattr(z, k) else UNCHANGED
                       for k, v in new.items()})
    elif section == "meters":
        ids = {m.id for m in site.meters}
        for m in site.meters:
            if form.get(f"name:{m.id}") is None:
                continue  # not in this form: left as it is
            name = _text(f"name:{m.id}")
            parent = form.get(f"parent:{m.id}", "") or None
            if not name or (parent is not None and parent not in ids):
                raise FormError(_("Every meter needs a name, and a parent among the meters."))
            sf.meter(m.id, name=name if name != m.name else None,
                     parent=parent if parent != m.parent else UNCHANGED)
    elif section == "tariff":
        index = _index(form, len(site.tariffs))
        if form.get("action") == "delete":
            sf.remove_tariff(index)
            return section
        kind = form.get("kind", "")
        fields: dict = {"name": _text("name"), "kind": kind}
        try:
            fields["valid_from"] = dt.date.fromisoformat(_text("valid_from", 10))
        except ValueError:
            raise FormError(_("Valid from: give a date.")) from None
        fields["vat"] = _number(form.get("vat"), _("VAT"))
        if fields["vat"] is None:
            raise FormError(_("VAT: give a number."))
        if kind == "flat":
            fields["price_vnd_per_kwh"] = _number(form.get("price"), _("Price"))
        elif kind == "tou":
            fields["prices"] = {b: _number(form.get(f"price_{b}"), b)
                                for b in ("peak", "normal", "offpeak")}
            fields["periods"] = _periods(form.get("periods", ""))
        else:
            raise FormError(_("Choose one of the options."))
        sf.tariff(index, fields)
    elif section == "recipient":
        index = _index(form, len(site.notify.recipients) if site.notify else 0)
        if form.get("action") == "delete":
            sf.remove_recipient(index)
            return section
        sf.recipient(index, {
            "name": _text("name", 100), "email": _text("email", 254) or None,
            "webhook": _text("webhook", 1000) or None, "lang": form.get("lang", "vi"),
            "min_severity": form.get("min_severity", "warning"),
            "escalate_after_min": _number(form.get("escalate_after_min"), _("Escalate after")),
            "quiet_hours": _text("quiet_hours", 11) or None})
    else:
        raise FormError(_("Choose one of the options."))
    return section


def _index(form, n: int) -> int | None:
    raw = form.get("index", "new")
    if raw == "new":
        return None
    if not raw.isdigit() or int(raw) >= n:
        raise FormError(_("Choose one of the options."))
    return int(raw)


def _periods(text: str) -> list[dict]:
    """Lines "peak mon-sat 09:30 11:30" → [{band, days, start, end}] (checked by the loader)."""
    out = []
    for line in text.strip().splitlines()[:50]:
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise FormError(_("Each period is a line: band days start end (peak mon-sat 09:30 "
                              "11:30)."))
        out.append({"band": parts[0], "days": parts[1], "start": parts[2], "end": parts[3]})
    return out


def _page(preview: dict | None = None, status: int = 200):
    site = ctx()["site"]
    editable, why = _editable()
    return render_template("settings.html", site=site, editable=editable, why=why,
                           version=file_version(site.source) if site.source else "",
                           preview=preview, severities=SEVERITIES), status


@bp.route("/")
@requires("admin")
def index():
    return _page()[0]


@bp.route("/", methods=["POST"])
@requires("admin")
def change():
    editable, why = _editable()
    if not editable:
        flash(why, "error")
        return _page(status=400)
    site = ctx()["site"]
    action = request.form.get("do", "preview")
    try:
        sf = SiteFile(site.source)
        section = _apply(sf, request.form)
        if not sf.diff():
            flash(_("Nothing changed."))
            return redirect(url_for("settings.index"))
        if action != "save":
            sf.check()
            return _page({"diff": sf.diff(), "form": request.form.to_dict()})
        new_site = sf.save(request.form.get("version", ""), now())
    except FormError as err:
        flash(str(err), "error")
        return _page(status=400)
    except ConfigError as err:
        flash(_("This setting is not valid, nothing was written:") + " " +
              "; ".join(f"{i.field}: {i.message}" for i in err.issues)[:600], "error")
        return _page(status=400)
    except SettingsError as err:
        msg = _("Someone else changed the settings since you opened this page; nothing was "
                "written. Open the page again.") if err.code == "concurrent" else str(err)
        flash(msg, "error")
        return _page(status=409 if err.code == "concurrent" else 400)
    ctx()["site"] = new_site  # this process at once; `bems run` within 30 s
    store().audit(g.user["name"], "settings.save",
                  {"section": section, "diff": sf.diff()[:4000]}, now())
    flash(_("Settings saved."))
    return redirect(url_for("settings.index"))
