"""The consolidated yearly report for the Department: every centre's Circular 25 figures
(form Mẫu 1.1: electricity by month, the TOE total, floor area, staff) in one workbook, one row
per centre, with the city's totals, and whether each centre must report on its own (at least
100,000 kWh a year)."""

from __future__ import annotations

from pathlib import Path

from bems.reports.yearly import REPORT_THRESHOLD_KWH, TOE_PER_MWH
from bems.text import neutralise_workbook


def consolidated_xlsx(rows: list[tuple], year: int, city_name: str, path: Path | None = None):
    """`rows` as `CityQueries.year` gives them. Returns the path, or the bytes if no path."""
    import io

    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = f"TT25 {year}"
    ws.append([f"Tổng hợp tình hình sử dụng năng lượng năm {year} của các trung tâm hành chính "
               f"— {city_name} (Thông tư 25/2020/TT-BCT, Mẫu 1.1)"])
    ws["A1"].font = Font(bold=True)
    ws.append([])
    head = (["Mã", "Trung tâm", "Cơ quan", "Diện tích sàn (m2)", "Số cán bộ"]
            + [f"Tháng {m} (kWh)" for m in range(1, 13)]
            + ["Tổng (kWh)", "Quy đổi (TOE)", "kWh/m2/năm", "kWh/người/năm", "Số tháng có số liệu",
               "Thuộc diện phải báo cáo (≥ 100.000 kWh)"])
    ws.append(head)
    for c in ws[3]:
        c.font = Font(bold=True)
    totals = [0.0] * 12
    for sid, name, org, area, staff, months in rows:
        total = sum(v for v in months if v is not None)
        have = sum(v is not None for v in months)
        for i, v in enumerate(months):
            totals[i] += v or 0.0
        ws.append([sid, name, org, area, staff]
                  + [round(v, 1) if v is not None else None for v in months]
                  + [round(total, 1), round(total / 1000 * TOE_PER_MWH, 3),
                     round(total / area, 2) if area else None,
                     round(total / staff, 1) if staff else None, have,
                     "có" if total >= REPORT_THRESHOLD_KWH else "không"])
    grand = sum(totals)
    ws.append(["", "Toàn thành phố", "", sum(r[3] for r in rows), sum(r[4] for r in rows)]
              + [round(v, 1) for v in totals]
              + [round(grand, 1), round(grand / 1000 * TOE_PER_MWH, 3)])
    for c in ws[ws.max_row]:
        c.font = Font(bold=True)
    neutralise_workbook(wb)  # a centre's name from its site file is never a formula
    if path is not None:
        wb.save(path)
        return path
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
