"""The yearly report to the Ministry (Circular 25/2020/TT-BCT, form Mẫu 1.1, Appendix I): a
budget-funded agency using 100,000 kWh or more a year reports the previous year by 15 January.

The figures the form asks of a state agency: energy by carrier and month, the converted total
(TOE), floor area, number of staff, and the year's saving measures with their effect. In
Vietnamese. The TOE factor for electricity is configuration-like data: 1 MWh = 0.1543 TOE
(the factor used in Vietnam's energy-reporting forms; unverified against the primary text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bems.text import neutralise_workbook
from bems.reports.monthly import ReportError, _main_meter, meter_total, month_bounds
from bems.reports.render import _font, fmt
from bems.site import Site
from bems.storage import Store

TOE_PER_MWH = 0.1543
REPORT_THRESHOLD_KWH = 100_000


@dataclass
class YearlyReport:
    site_name: str
    organisation: str
    year: int
    floor_area_m2: float
    staff: int
    months: list[tuple[int, float | None]]  # month → kWh (None: no data)
    measures: list[tuple[str, str]]  # (measure, effect)

    @property
    def total_kwh(self) -> float:
        return sum(v for _, v in self.months if v is not None)

    @property
    def toe(self) -> float:
        return self.total_kwh / 1000 * TOE_PER_MWH

    @property
    def must_report(self) -> bool:
        return self.total_kwh >= REPORT_THRESHOLD_KWH


def build_yearly(site: Site, store: Store, year: int) -> YearlyReport:
    main = _main_meter(site)
    months = []
    for m in range(1, 13):
        s, e = month_bounds(site, f"{year:04d}-{m:02d}")
        months.append((m, meter_total(store, main, s, e)[0]))
    if all(v is None for _, v in months):
        raise ReportError(f"no readings of the main meter in {year}: nothing to report")
    sp = site.strategies
    measures = []
    if sp.occupancy:
        measures.append((f"Điều hòa đặt ở {max(sp.occupied_setpoint, site.control.policy_min_cooling_setpoint):g} °C "
                         "trở lên khi có người, tắt ngoài giờ làm việc và ngày nghỉ",
                         "theo dõi trong báo cáo tháng"))
    if sp.optimal_start:
        measures.append(("Khởi động điều hòa tối ưu theo tốc độ làm mát của từng vùng",
                         "theo dõi trong báo cáo tháng"))
    if sp.lighting:
        measures.append((f"Tắt đèn ngoài giờ, hành lang giảm còn {sp.corridor_percent:g} %",
                         "theo dõi trong báo cáo tháng"))
    if sp.outdoor_air:
        measures.append(("Chỉ cấp gió tươi khi có người", "theo dõi trong báo cáo tháng"))
    return YearlyReport(site.name, site.reports.organisation or site.name, year,
                        site.floor_area_m2, site.reports.staff, months, measures)


def to_xlsx(r: YearlyReport, path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Mau 1.1"
    ws.append([f"Báo cáo tình hình sử dụng năng lượng năm {r.year} (Thông tư 25/2020/TT-BCT, "
               "Mẫu 1.1)"])
    ws["A1"].font = Font(bold=True)
    ws.append(["Cơ quan", r.organisation])
    ws.append(["Diện tích sàn (m2)", r.floor_area_m2])
    ws.append(["Số cán bộ, công chức, viên chức", r.staff])
    ws.append([])
    ws.append(["Tháng", "Điện năng (kWh)"])
    for m, v in r.months:
        ws.append([m, round(v, 1) if v is not None else None])
    ws.append(["Tổng (kWh)", round(r.total_kwh, 1)])
    ws.append(["Quy đổi (TOE)", round(r.toe, 3)])
    ws.append(["Suất tiêu thụ (kWh/m2/năm)", round(r.total_kwh / r.floor_area_m2, 2)])
    ws.append([])
    ws.append(["Giải pháp tiết kiệm năng lượng đã thực hiện", "Hiệu quả"])
    for m, e in r.measures:
        ws.append([m, e])
    neutralise_workbook(wb)
    wb.save(path)
    return path


def to_pdf(r: YearlyReport, path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", _font())
    pdf.add_font("DejaVu", "B", _font().replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 14)
    pdf.multi_cell(0, 8, f"Báo cáo tình hình sử dụng năng lượng năm {r.year}",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    pdf.multi_cell(0, 6, "Theo Thông tư 25/2020/TT-BCT, Phụ lục I, Mẫu 1.1",
                   new_x="LMARGIN", new_y="NEXT")
    for label, value in (("Cơ quan", r.organisation),
                         ("Diện tích sàn", f"{fmt(r.floor_area_m2, 'vi', 0)} m²"),
                         ("Số cán bộ, công chức, viên chức", str(r.staff))):
        pdf.cell(90, 6, label)
        pdf.cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "B", 10)
    pdf.cell(40, 6, "Tháng", border=1)
    pdf.cell(60, 6, "Điện năng (kWh)", border=1, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    for m, v in r.months:
        pdf.cell(40, 6, str(m), border=1)
        pdf.cell(60, 6, fmt(v, "vi"), border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "B", 10)
    pdf.cell(40, 6, "Tổng", border=1)
    pdf.cell(60, 6, fmt(r.total_kwh, "vi"), border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(40, 6, "Quy đổi (TOE)", border=1)
    pdf.cell(60, 6, fmt(r.toe, "vi", 3), border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.multi_cell(0, 6, "Thuộc diện phải báo cáo (≥ 100.000 kWh/năm): "
                         + ("có" if r.must_report else "không"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "B", 10)
    pdf.multi_cell(0, 7, "Giải pháp tiết kiệm năng lượng đã thực hiện và hiệu quả",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    for m, e in r.measures:
        pdf.multi_cell(0, 6, f"- {m}: {e}", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def render(r: YearlyReport, fmt_name: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"yearly-{r.year}-vi"
    if fmt_name == "xlsx":
        return to_xlsx(r, base.with_suffix(".xlsx"))
    if fmt_name == "pdf":
        return to_pdf(r, base.with_suffix(".pdf"))
    raise ReportError("the yearly report is made as pdf or xlsx")
