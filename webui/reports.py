"""Reports: the monthly reports made so far, to download; make one on demand."""

from __future__ import annotations

import datetime as dt

from pathlib import Path

from flask import (Blueprint, abort, flash, g, redirect, render_template, request, send_file,
                   url_for)
from flask_babel import gettext as _

from bems.reports.monthly import ReportError, build_monthly
from models.savings import option_c
from bems.reports.render import render
from webui import ctx, now, store
from webui.auth import requires

MESSAGES = {
    "month_invalid": lambda: _("The month is YYYY-MM (2000-01 to 2100-12)."),
    "no_main_meter": lambda: _("The site file has no main meter."),
    "no_data": lambda: _("There are no readings of the main meter in that month."),
}
bp = Blueprint("reports", __name__, url_prefix="/reports")


def folder() -> Path:
    return ctx()["db"].parent / "reports"


@bp.route("/")
def index():
    files = sorted(folder().glob("report-*"), reverse=True) if folder().exists() else []
    first = now().astimezone(ctx()["site"].tz).date().replace(day=1)
    last_month = (first - dt.timedelta(days=1)).strftime("%Y-%m")  # what is usually wanted
    return render_template("reports.html", files=[f.name for f in files], last_month=last_month)


@bp.route("/make", methods=["POST"])
@requires("operator")
def make():
    month = request.form.get("month", "")
    try:
        r = build_monthly(ctx()["site"], store(), month, option_c)
        for fmt, lang in (("pdf", "vi"), ("pdf", "en"), ("xlsx", "vi"), ("csv", "en")):
            render(r, fmt, folder(), lang)
        store().audit(g.user["name"], "report.make", {"month": month}, now())
        flash(_("Report made."))
    except ReportError as err:
        flash(MESSAGES.get(err.code, MESSAGES["no_data"])(), "error")
        return index(), 400
    return redirect(url_for("reports.index"))


@bp.route("/file/<name>")
def download(name: str):
    path = folder() / name
    if "/" in name or not name.startswith("report-") or not path.exists():
        abort(404)
    return send_file(path, as_attachment=True)
