"""The monthly report as CSV (long format), XLSX (sheets to pivot) and PDF (charts, readable in
black and white), in Vietnamese or English. All three are made from the same rows."""

from __future__ import annotations

import csv
from pathlib import Path

from bems.faults.texts import fault_text
from bems.i18n import N_, tr
from bems.reasons import render as render_reason
from bems.text import neutralise_workbook, safe_rows
from bems.formatting import number
from bems.reports.monthly import MonthlyReport

TEXT = {
    "title": N_("Monthly energy report"),
    "month": N_("Month"),
    "total": N_("Total electricity (main meter)"),
    "ac": N_("Air conditioning"),
    "lighting": N_("Lighting"),
    "plugs": N_("Plugs and equipment"),
    "other": N_("Other sub-metered"),
    "unmetered": N_("Unmetered"),
    "end_use": N_("Energy by end use"),
    "daily": N_("Daily energy"),
    "no_baseline": N_("no baseline period in the site file ([reports] baseline_from, "
                      "baseline_to)"),
    "not_estimated": N_("savings were not estimated"),
    "baseline_unusable": N_("the baseline period's readings cannot be used"),
    "max_day": N_("Day with the highest use"),
    "peak": N_("Peak demand (largest 15-min mean)"),
    "cost": N_("Cost before VAT"),
    "vat": N_("VAT"),
    "cost_total": N_("Cost including VAT"),
    "tariff": N_("Tariff"),
    "eui": N_("Energy use intensity, month"),
    "eui12": N_("Energy use intensity, last 12 months"),
    "prev": N_("Previous month"),
    "last_year": N_("Same month last year"),
    "no_data": N_("no data"),
    "savings": N_("Savings against the baseline (IPMVP option C)"),
    "baseline": N_("Adjusted baseline"),
    "actual": N_("Actual"),
    "saved": N_("Saved"),
    "model_fit": N_("Baseline model fit"),
    "not_available": N_("not available"),
    "compliance": N_("Compliance with the energy-saving rules"),
    "ac_below_floor_zone_h": N_("AC below the setpoint floor while occupied (zone-hours)"),
    "lights_after_hours_zone_h": N_("Lights on outside working hours (zone-hours)"),
    "ac_on_closed_days_zone_h": N_("AC on days the office is closed (zone-hours)"),
    "events": N_("Notable events"),
    "alarms": N_("Alarms"),
    "alarms_raised": N_("Alarms raised"),
    "critical": N_("critical"),
    "alarms_acknowledged": N_("Acknowledged"),
    "median_ack": N_("Median minutes to acknowledge"),
    "faults": N_("Faults found"),
    "faults_note": N_("{n} faults in the month, costing about {vnd} VND a day while they "
                      "lasted; the most costly:"),
    "meters": N_("Meters"),
    "coverage": N_("data coverage"),
    "area": N_("Floor area"),
    "none": N_("none"),
}


FAULT_STATUS = {
    "open": N_("open"),
    "acknowledged": N_("acknowledged"),
    "closed": N_("closed"),
}


def t(key: str, lang: str) -> str:
    return tr(lang, TEXT[key])


def fmt(value: float | None, lang: str, digits: int = 1) -> str:
    """1,234.5 in English, 1.234,5 in Vietnamese."""
    if value is None:
        return t("no_data", lang)
    return number(value, lang, digits)


def rows(r: MonthlyReport, lang: str = "en") -> list[tuple[str, str, object, str]]:
    """(section, item, value, unit): the figures every format shows."""
    out: list[tuple[str, str, object, str]] = [
        ("summary", "month", r.month, ""),
        ("summary", "total_kwh", round(r.main.kwh, 3), "kWh"),
        ("summary", "peak_kw", round(r.peak_kw, 3), "kW"),
        ("summary", "peak_at", r.peak_at.strftime("%Y-%m-%d %H:%M") if r.peak_at else "", ""),
        ("summary", "cost_before_vat_vnd", round(r.cost.before_vat_vnd), "VND"),
        ("summary", "vat_vnd", round(r.cost.vat_vnd), "VND"),
        ("summary", "cost_total_vnd", round(r.cost.total_vnd), "VND"),
        ("summary", "eui_kwh_m2", round(r.eui_kwh_m2, 4), "kWh/m2"),
        ("summary", "eui_12m_kwh_m2", round(r.eui_12m_kwh_m2, 3) if r.eui_12m_kwh_m2 else "", "kWh/m2"),
        ("summary", "previous_month_kwh", round(r.previous_month_kwh, 3) if r.previous_month_kwh else "", "kWh"),
        ("summary", "same_month_last_year_kwh", round(r.same_month_last_year_kwh, 3) if r.same_month_last_year_kwh else "", "kWh"),
        ("summary", "floor_area_m2", r.floor_area_m2, "m2"),
    ]
    for k, v in r.end_uses.items():
        out.append(("end_use", k, round(v, 3), "kWh"))
    for m in r.meters:
        out.append(("meter", m.id, round(m.kwh, 3) if m.kwh is not None else "", "kWh"))
    for d, v in r.daily:
        out.append(("daily", d.isoformat(), round(v, 3), "kWh"))
    s = r.savings
    if s.available:
        out += [("savings", "baseline_kwh", round(s.baseline_kwh, 3), "kWh"),
                ("savings", "actual_kwh", round(s.actual_kwh, 3), "kWh"),
                ("savings", "saved_kwh", round(s.saved_kwh, 3), "kWh"),
                ("savings", "model_cv_rmse", round(s.cv_rmse, 2), "%"),
                ("savings", "model_nmbe", round(s.nmbe, 2), "%")]
    else:
        out.append(("savings", "not_available", why_not(s.reason, "en"), ""))
    for k, v in r.compliance.items():
        out.append(("compliance", k, v, "zone-h"))
    for f in r.faults:
        out.append(("fault", f"{f['rule']}:{f['target']}", round(f["vnd_per_day"]), "VND/day"))
    a = r.alarms
    if a:
        out.append(("alarms", "raised", a["raised"], ""))
        for sev in ("critical", "warning", "info"):
            out.append(("alarms", f"raised_{sev}", a["by_severity"].get(sev, 0), ""))
        out.append(("alarms", "acknowledged", a["acknowledged"], ""))
        out.append(("alarms", "median_minutes_to_acknowledge",
                    round(a["median_ack_min"], 1) if a["median_ack_min"] is not None else "",
                    "min"))
    return out


def to_csv(r: MonthlyReport, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["section", "item", "value", "unit"])
        w.writerows(safe_rows(rows(r)))
    return path


def to_xlsx(r: MonthlyReport, path: Path, lang: str = "en") -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook(write_only=False)
    ws = wb.active
    ws.title = "Summary"
    ws.append([t("title", lang), r.site_name, r.month])
    ws["A1"].font = Font(bold=True)
    ws.append(["section", "item", "value", "unit"])
    for row in rows(r, lang):
        if row[0] in ("summary", "end_use", "savings", "compliance"):
            ws.append(list(row))
    daily = wb.create_sheet("Daily")
    daily.append(["date", "kwh"])
    for d, v in r.daily:
        daily.append([d, round(v, 3)])
    meters = wb.create_sheet("Meters")
    meters.append(["meter", "name", "measures", "building", "floor", "kwh", "coverage"])
    for m in r.meters:
        meters.append([m.id, m.name, m.measures, m.building, m.floor,
                       round(m.kwh, 3) if m.kwh is not None else None, round(m.coverage, 4)])
    fs = wb.create_sheet("Faults")
    fs.append(["rule", "target", "name", "first_local", "last_local", "kwh_per_day",
               "vnd_per_day", "discomfort_kh", "status", "title"])
    for f in r.faults:
        fs.append([f["rule"], f["target"], f["name"], f["first"].strftime("%Y-%m-%d %H:%M"),
                   f["last"].strftime("%Y-%m-%d %H:%M"), f["kwh_per_day"], round(f["vnd_per_day"]),
                   f["discomfort_kh"], f["status"],
                   fault_text(f["rule"], f["evidence"], f["name"], lang)["title"]])
    ev = wb.create_sheet("Events")
    ev.append(["time_utc", "what", "who", "why"])
    for e in r.events:
        ev.append([e["time"].strftime("%Y-%m-%d %H:%M"), e["what"], e["who"],
                   render_reason(e["why"], lang)[:500]])
    neutralise_workbook(wb)
    wb.save(path)
    return path


# what an event line in the report says, by language
EVENTS = {
    "write": N_("wrote"),
    "release": N_("released"),
    "restore": N_("restored"),
    "override.set": N_("override set"),
    "override.release": N_("override released"),
    "schedule.save": N_("schedule saved"),
    "exception.add": N_("exception day added"),
    "exception.delete": N_("exception day removed"),
    "strategies.save": N_("strategies saved"),
    "report.make": N_("report made"),
    "report.monthly": N_("monthly report made"),
    "alarm.ack": N_("alarm acknowledged"),
    "user.add": N_("user added"),
    "user.delete": N_("user deleted"),
    "user.disable": N_("user disabled"),
    "user.enable": N_("user enabled"),
    "user.password": N_("password changed"),
    "user.role": N_("role changed"),
    "login.failed": N_("failed sign-ins"),
    "forbidden": N_("refused: not allowed for the role"),
    "db.purge": N_("old readings purged"),
    "override": N_("operator override"),
    "cli": N_("command line"),
    "done": N_("done"),
    "unchanged": N_("unchanged"),
    "rejected": N_("rejected"),
    "failed": N_("failed"),
    "unconfirmed": N_("unconfirmed"),
    "released": N_("released"),
    "restored": N_("restored"),
}


def event_line(e: dict, lang: str) -> str:
    """One event of the month in the report's language."""
    def word(key: str) -> str:
        text = EVENTS.get(str(key))
        return tr(lang, text) if text else str(key)
    what = word(e.get("action", e["what"]))
    if "point" in e:
        value = "" if e.get("value") is None else f" = {fmt(float(e['value']), lang)}"
        what = f"{what} {e['point']}{value} ({word(e.get('outcome', ''))})"
        why = render_reason(e.get("why"), lang)
        what += f": {why}" if why else ""
    elif "count" in e:
        what = f"{what} ×{e['count']}"
    return f"{e['time']:%d/%m %H:%M} {word(e['who']) if e['who'] else ''}: {what}"


def why_not(reason: str, lang: str) -> str:
    """Why savings are not shown, in the report's language (the English detail after a code
    only in English)."""
    code, _sep, detail = reason.partition(": ")
    if code in TEXT:
        return t(code, lang) + (f" ({detail})" if detail and lang == "en" else "")
    return reason


def _charts(r: MonthlyReport, lang: str, folder: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("ac", "lighting", "plugs", "other", "unmetered") if r.end_uses.get(k)]
    fig, ax = plt.subplots(figsize=(7, 2.6), dpi=150)
    hatches = ["//", "..", "xx", "\\\\", "--"]
    bars = ax.barh([t(k, lang) for k in keys], [r.end_uses[k] for k in keys], color="white",
                   edgecolor="black")
    for b, h in zip(bars, hatches):
        b.set_hatch(h)
    ax.set_xlabel("kWh")
    ax.invert_yaxis()
    fig.tight_layout()
    end_use = folder / "end_use.png"
    fig.savefig(end_use)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 2.6), dpi=150)
    ax.bar([d.day for d, _ in r.daily], [v for _, v in r.daily], color="0.55", edgecolor="black")
    ax.set_xlabel(t("month", lang) + f" {r.month}")
    ax.set_ylabel("kWh")
    fig.tight_layout()
    daily = folder / "daily.png"
    fig.savefig(daily)
    plt.close(fig)
    return end_use, daily


def _font() -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


def to_pdf(r: MonthlyReport, path: Path, lang: str = "en") -> Path:
    import tempfile

    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", _font())
    pdf.add_font("DejaVu", "B", _font().replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(True, 15)
    pdf.add_page()

    def h(text: str, size: int = 13) -> None:
        pdf.set_font("DejaVu", "B", size)
        pdf.ln(2)
        pdf.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")

    def line(label: str, value: str) -> None:
        pdf.set_font("DejaVu", "", 10)
        pdf.cell(110, 6, label)
        pdf.cell(0, 6, value, new_x="LMARGIN", new_y="NEXT", align="R")

    h(f"{t('title', lang)} - {r.month}", 16)
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(0, 6, r.site_name, new_x="LMARGIN", new_y="NEXT")
    line(t("area", lang), f"{fmt(r.floor_area_m2, lang, 0)} m²")
    h(t("total", lang))
    line(t("total", lang), f"{fmt(r.main.kwh, lang)} kWh")
    line(t("peak", lang), f"{fmt(r.peak_kw, lang)} kW"
         + (f" ({r.peak_at:%d/%m/%Y %H:%M})" if r.peak_at else ""))
    if r.max_day:
        line(t("max_day", lang), f"{r.max_day[0]:%d/%m/%Y}: {fmt(r.max_day[1], lang)} kWh")
    line(t("eui", lang), f"{fmt(r.eui_kwh_m2, lang, 2)} kWh/m²")
    line(t("eui12", lang), f"{fmt(r.eui_12m_kwh_m2, lang, 1)} kWh/m²"
         if r.eui_12m_kwh_m2 else t("no_data", lang))
    line(t("prev", lang), f"{fmt(r.previous_month_kwh, lang)} kWh"
         if r.previous_month_kwh else t("no_data", lang))
    line(t("last_year", lang), f"{fmt(r.same_month_last_year_kwh, lang)} kWh"
         if r.same_month_last_year_kwh else t("no_data", lang))
    h(t("cost_total", lang))
    line(f"{t('tariff', lang)}", r.tariff_name[:60])
    line(t("cost", lang), f"{fmt(r.cost.before_vat_vnd, lang, 0)} ₫")
    line(t("vat", lang), f"{fmt(r.cost.vat_vnd, lang, 0)} ₫")
    line(t("cost_total", lang), f"{fmt(r.cost.total_vnd, lang, 0)} ₫")
    with tempfile.TemporaryDirectory() as tmp:
        end_use_png, daily_png = _charts(r, lang, Path(tmp))
        h(t("end_use", lang))
        for k, v in r.end_uses.items():
            line(t(k, lang), f"{fmt(v, lang)} kWh")
        pdf.image(str(end_use_png), w=170)
        # a heading stays with its chart: a new page when both do not fit
        if pdf.get_y() + 12 + 170 * 2.6 / 7 > pdf.h - pdf.b_margin:
            pdf.add_page()
        h(t("daily", lang))
        pdf.image(str(daily_png), w=170)
    h(t("meters", lang))
    for m in r.meters:
        where = " ".join(x for x in (m.building or "", f"/{m.floor}" if m.floor else "") if x)
        line(f"{m.name} ({m.id}{', ' + where if where else ''})"[:60],
             (f"{fmt(m.kwh, lang)} kWh, {t('coverage', lang)} {fmt(100 * m.coverage, lang, 0)} %"
              if m.kwh is not None else t("no_data", lang)))
    h(t("savings", lang))
    s = r.savings
    if s.available:
        line(t("baseline", lang), f"{fmt(s.baseline_kwh, lang)} kWh")
        line(t("actual", lang), f"{fmt(s.actual_kwh, lang)} kWh")
        line(t("saved", lang), f"{fmt(s.saved_kwh, lang)} kWh ({fmt(s.saved_pct, lang)} %)")
        line(t("model_fit", lang), f"CV(RMSE) {fmt(s.cv_rmse, lang)} %, "
                                   f"NMBE {fmt(s.nmbe, lang)} % ({s.model})"[:70])
    else:
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 6, f"{t('not_available', lang)}: {why_not(s.reason, lang)}",
                       new_x="LMARGIN", new_y="NEXT")
    h(t("compliance", lang))
    for k, v in r.compliance.items():
        line(t(k, lang), fmt(v, lang, 1))
    h(t("faults", lang))
    pdf.set_font("DejaVu", "", 9)
    if not r.faults:
        pdf.cell(0, 6, t("none", lang), new_x="LMARGIN", new_y="NEXT")
    else:
        vnd = sum(f["vnd_per_day"] for f in r.faults)
        pdf.multi_cell(0, 5, t("faults_note", lang).format(n=len(r.faults), vnd=fmt(vnd, lang, 0)),
                       new_x="LMARGIN", new_y="NEXT")
        for f in r.faults[:12]:
            title = fault_text(f["rule"], f["evidence"], f["name"], lang)["title"]
            when = f["first"].astimezone(r.start.tzinfo).strftime("%d/%m")
            pdf.multi_cell(0, 5, f"{title} — {f['name']} ({when}, {fmt(f['vnd_per_day'], lang, 0)} "
                                 f"VND/{'ngày' if lang == 'vi' else 'day'}, "
                                 f"{tr(lang, FAULT_STATUS[f['status']])})"[:140],
                           new_x="LMARGIN", new_y="NEXT")
    if r.alarms:
        h(t("alarms", lang))
        a = r.alarms
        line(t("alarms_raised", lang), f"{a['raised']} ({a['by_severity'].get('critical', 0)} "
                                       f"{t('critical', lang)})")
        line(t("alarms_acknowledged", lang), str(a["acknowledged"]))
        line(t("median_ack", lang), fmt(a["median_ack_min"], lang, 0)
             if a["median_ack_min"] is not None else "–")
    h(t("events", lang))
    pdf.set_font("DejaVu", "", 9)
    if not r.events:
        pdf.cell(0, 6, t("none", lang), new_x="LMARGIN", new_y="NEXT")
    for e in r.events[:40]:
        pdf.multi_cell(0, 5, event_line(e, lang)[:200], new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def render(r: MonthlyReport, fmt_name: str, out: Path, lang: str = "en") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"report-{r.month}-{lang}"
    if fmt_name == "csv":
        return to_csv(r, base.with_suffix(".csv"))
    if fmt_name == "xlsx":
        return to_xlsx(r, base.with_suffix(".xlsx"), lang)
    if fmt_name == "pdf":
        return to_pdf(r, base.with_suffix(".pdf"), lang)
    raise ValueError(f"unknown format {fmt_name!r}")



