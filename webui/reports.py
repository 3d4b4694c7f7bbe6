"""Reports: the monthly reports made so far, to download; make one on demand."""

from __future__ import annotations

import datetime as dt
import re

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
    return render_template("reports.html", months=_by_month(f.name for f in files),
                           last_month=last_month)


_FILE = re.compile(r"report-(\d{4})-(\d{2})-(vi|en)\.(pdf|xlsx|csv)")


def _by_month(names) -> list[tuple[str, list[tuple[str, str]]]]:
    """The report files grouped by month, newest first, each with a label a person reads
    ("Tháng 11/2026", "PDF tiếng Việt") rather than its file name."""
    kinds = {("pdf", "vi"): lambda: _("PDF in Vietnamese"),
             ("pdf", "en"): lambda: _("PDF in English"),
             ("xlsx", "vi"): lambda: _("Spreadsheet (XLSX)"),
             ("csv", "en"): lambda: _("Data (CSV)")}
    months: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        m = _FILE.fullmatch(name)
        if not m:
            continue
        year, month, lang, ext = m.groups()
        label = kinds.get((ext, lang), lambda: f"{ext.upper()} ({lang})")()
        months.setdefault(_("%(month)s/%(year)s", month=month, year=year), []).append((label, name))
    order = ["pdf-vi", "pdf-en", "xlsx", "csv"]
    rank = {k: i for i, k in enumerate(order)}
    for files in months.values():
        files.sort(key=lambda f: rank.get(_kind_key(f[1]), 9))
    return list(months.items())


def _kind_key(name: str) -> str:
    lang_ext = name.rsplit("-", 1)[-1]  # "vi.pdf"
    lang, ext = lang_ext.split(".")
    return f"{ext}-{lang}" if ext == "pdf" else ext


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
