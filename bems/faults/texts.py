"""What each fault says to a person, in Vietnamese and English: a title, the likely cause and
what to check. Filled from the finding's evidence; used by the UI, the CLI and the reports."""

from __future__ import annotations

from typing import Any

from bems.formatting import number

TEXTS: dict[str, dict[str, dict[str, str]]] = {
    "ac_after_hours": {
        "title": {"en": "AC on outside working hours", "vi": "Điều hòa chạy ngoài giờ làm việc"},
        "cause": {"en": "The AC of {target} ran {hours} h while the zone was closed{closed}. "
                        "A wall panel or a local controller may hold it on (at a priority above "
                        "BEMS), or its own time clock is wrong.",
                  "vi": "Điều hòa của {target} chạy {hours} giờ khi khu vực nghỉ{closed}. Có thể "
                        "bảng điều khiển trên tường hoặc bộ điều khiển tại chỗ đang giữ nó bật "
                        "(ở mức ưu tiên cao hơn BEMS), hoặc đồng hồ hẹn giờ của nó sai."},
        "check": {"en": "Look at the unit's wall panel and its priority array (who commands it); "
                        "ask who stayed late; check the controller's schedule.",
                  "vi": "Xem bảng điều khiển của máy và mảng ưu tiên (ai đang ra lệnh); hỏi ai "
                        "ở lại muộn; kiểm tra lịch của bộ điều khiển."},
    },
    "lights_after_hours": {
        "title": {"en": "Lights on outside working hours", "vi": "Đèn bật ngoài giờ làm việc"},
        "cause": {"en": "The lights of {target} stayed on {hours} h while the zone was closed.",
                  "vi": "Đèn của {target} bật {hours} giờ khi khu vực nghỉ."},
        "check": {"en": "Walk the zone; check its switch and the lighting controller's "
                        "schedule.",
                  "vi": "Đi kiểm tra khu vực; xem công tắc và lịch của bộ điều khiển chiếu "
                        "sáng."},
    },
    "setpoint_below_floor": {
        "title": {"en": "Cooled below the 25 °C floor", "vi": "Làm mát dưới mức sàn 25 °C"},
        "cause": {"en": "{target} was cooled to {setpoint} °C while occupied, below the policy "
                        "floor of {floor} °C, for {hours} h. A person's override, a wall panel "
                        "at a priority above BEMS, or the controller's own program holds it.",
                  "vi": "{target} được làm mát đến {setpoint} °C khi có người, thấp hơn mức sàn "
                        "{floor} °C, trong {hours} giờ. Một lệnh ghi đè, bảng điều khiển trên "
                        "tường ở mức ưu tiên cao hơn BEMS, hoặc chương trình của bộ điều khiển "
                        "đang giữ nó."},
        "check": {"en": "Look at the setpoint's priority array (who commands it) and the wall "
                        "panel; remind the room of the 25 °C rule (Joint Circular 111/2009).",
                  "vi": "Xem mảng ưu tiên của điểm đặt (ai đang ra lệnh) và bảng điều khiển "
                        "trên tường; nhắc phòng về quy định 25 °C (Thông tư liên tịch "
                        "111/2009)."},
    },
    "lights_unoccupied": {
        "title": {"en": "Lights on in an empty zone", "vi": "Đèn bật khi khu vực không có người"},
        "cause": {"en": "The occupancy sensor of {target} saw no one for {hours} h while its "
                        "lights were on.",
                  "vi": "Cảm biến hiện diện của {target} không thấy ai trong {hours} giờ mà đèn "
                        "vẫn bật."},
        "check": {"en": "Check whether the room was used; if not, turn lighting control by "
                        "occupancy on; if it was, the occupancy sensor may be faulty.",
                  "vi": "Kiểm tra phòng có được dùng không; nếu không, bật điều khiển đèn theo "
                        "hiện diện; nếu có, cảm biến hiện diện có thể hỏng."},
    },
    "cannot_reach_setpoint": {
        "title": {"en": "Zone warmer than its setpoint while cooling",
                  "vi": "Khu vực nóng hơn điểm đặt khi đang làm mát"},
        "cause": {"en": "{target} stayed up to {above_k} K above its setpoint for {hours} h "
                        "with its AC cooling.{window}",
                  "vi": "{target} cao hơn điểm đặt tới {above_k} K trong {hours} giờ dù điều "
                        "hòa đang làm mát.{window}"},
        "check": {"en": "Check windows and doors, the unit's filter and coil, its refrigerant "
                        "charge (a leak), and the room sensor against a hand-held thermometer.",
                  "vi": "Kiểm tra cửa sổ và cửa ra vào, lưới lọc và dàn lạnh, lượng gas (rò "
                        "rỉ), và so cảm biến phòng với nhiệt kế cầm tay."},
    },
    "short_cycling": {
        "title": {"en": "AC short-cycling", "vi": "Điều hòa bật tắt liên tục"},
        "cause": {"en": "The AC of {target} switched on and off {changes_3h} times in 3 hours "
                        "without BEMS asking it to. It wears the compressor and wastes energy.",
                  "vi": "Điều hòa của {target} bật tắt {changes_3h} lần trong 3 giờ mà BEMS "
                        "không ra lệnh. Việc này làm mòn máy nén và tốn điện."},
        "check": {"en": "Check the thermostat's deadband and location (sun, supply air on it), "
                        "and the unit's protections (pressure, overload).",
                  "vi": "Kiểm tra vùng chết của bộ điều nhiệt và vị trí đặt (nắng, gió cấp "
                        "thổi vào), và các bảo vệ của máy (áp suất, quá tải)."},
    },
    "sensor_stuck": {
        "title": {"en": "Room sensor stuck", "vi": "Cảm biến phòng bị treo"},
        "cause": {"en": "The temperature of {target} read {value} °C for {hours} h while the "
                        "zone must have changed (its AC started or stopped).",
                  "vi": "Nhiệt độ của {target} đứng yên ở {value} °C trong {hours} giờ trong "
                        "khi khu vực phải thay đổi (điều hòa đã bật hoặc tắt)."},
        "check": {"en": "Check the sensor and its wiring or the controller's input; compare "
                        "with a hand-held thermometer.",
                  "vi": "Kiểm tra cảm biến, dây nối hoặc đầu vào bộ điều khiển; so với nhiệt "
                        "kế cầm tay."},
    },
    "sensor_bias": {
        "title": {"en": "Room sensor reads off (bias or drift)",
                  "vi": "Cảm biến phòng đọc sai (lệch hoặc trôi)"},
        "cause": {"en": "At night, with every AC off, {target} read {bias_k} K away from its "
                        "usual difference to the other zones of its floor ({usual_k} K).",
                  "vi": "Ban đêm, khi mọi điều hòa tắt, {target} lệch {bias_k} K so với chênh "
                        "lệch thường ngày với các khu vực cùng tầng ({usual_k} K)."},
        "check": {"en": "Compare the sensor with a hand-held thermometer; recalibrate or "
                        "replace it. A sensor reading high makes the zone over-cooled.",
                  "vi": "So cảm biến với nhiệt kế cầm tay; hiệu chuẩn lại hoặc thay. Cảm "
                        "biến đọc cao làm khu vực bị làm lạnh quá mức."},
    },
    "sensor_out_of_range": {
        "title": {"en": "Room sensor out of range", "vi": "Cảm biến phòng ngoài dải đo"},
        "cause": {"en": "{target} read an impossible temperature ({value} °C).",
                  "vi": "{target} đọc nhiệt độ không thể có ({value} °C)."},
        "check": {"en": "Check the sensor, its wiring and the controller's input type.",
                  "vi": "Kiểm tra cảm biến, dây nối và kiểu đầu vào của bộ điều khiển."},
    },
    "ahu_supply_air_high": {
        "title": {"en": "Air handler cannot cool its supply air",
                  "vi": "Máy xử lý không khí không làm lạnh đủ gió cấp"},
        "cause": {"en": "The supply air of {target} stayed up to {above_k} K above its "
                        "setpoint for {hours} h while cooling (ASHRAE Guideline 36, FC13). The "
                        "zones it serves warm up.",
                  "vi": "Gió cấp của {target} cao hơn điểm đặt tới {above_k} K trong {hours} "
                        "giờ khi đang làm mát (ASHRAE Guideline 36, FC13). Các khu vực nó phục "
                        "vụ bị nóng lên."},
        "check": {"en": "Check the refrigerant charge (a leak), the condenser (dirty, blocked, "
                        "in the sun), the compressor stages and the filters.",
                  "vi": "Kiểm tra lượng gas (rò rỉ), dàn nóng (bẩn, bị chắn, nắng chiếu), các "
                        "cấp máy nén và lưới lọc."},
    },
    "ahu_outdoor_air_high": {
        "title": {"en": "Too much outdoor air (damper stuck open?)",
                  "vi": "Quá nhiều gió tươi (van gió kẹt mở?)"},
        "cause": {"en": "{target} took in about {seen_pct} % outdoor air in hot weather, where "
                        "it usually takes {usual_pct} % or what its damper command asks "
                        "(Guideline 36, FC6). Hot humid air costs cooling.",
                  "vi": "{target} lấy khoảng {seen_pct} % gió tươi khi trời nóng, trong khi "
                        "thường chỉ {usual_pct} % hoặc theo lệnh van gió (Guideline 36, FC6). "
                        "Không khí nóng ẩm làm tốn điện làm mát."},
        "check": {"en": "Check the outdoor-air damper and its actuator (stuck, linkage loose), "
                        "and the mixed-air sensor.",
                  "vi": "Kiểm tra van gió tươi và bộ truyền động (kẹt, tuột khớp nối), và cảm "
                        "biến gió hòa trộn."},
    },
    "ahu_return_air_drift": {
        "title": {"en": "Return-air sensor reads off (drift)",
                  "vi": "Cảm biến gió hồi đọc sai (trôi)"},
        "cause": {"en": "With the fan running, the return air of {target} read {bias_k} K away "
                        "from its usual difference to the zones it serves ({usual_k} K): its "
                        "sensor drifts, or the zones' sensors drift together.",
                  "vi": "Khi quạt chạy, gió hồi của {target} lệch {bias_k} K so với chênh lệch "
                        "thường ngày với các khu vực nó phục vụ ({usual_k} K): cảm biến của nó "
                        "bị trôi, hoặc các cảm biến khu vực cùng trôi."},
        "check": {"en": "Compare the return-air sensor with a hand-held thermometer in the "
                        "return duct; the air handler's controls use it.",
                  "vi": "So cảm biến gió hồi với nhiệt kế cầm tay trong ống gió hồi; bộ điều "
                        "khiển của máy dùng giá trị này."},
    },
    "ahu_mixed_air_implausible": {
        "title": {"en": "Air handler temperatures disagree",
                  "vi": "Nhiệt độ của máy xử lý không khí mâu thuẫn"},
        "cause": {"en": "The mixed air of {target} was colder or warmer than both the return "
                        "and the outdoor air for {hours} h (Guideline 36, FC2/FC3): a sensor is "
                        "wrong.",
                  "vi": "Gió hòa trộn của {target} lạnh hơn hoặc nóng hơn cả gió hồi và gió "
                        "ngoài trời trong {hours} giờ (Guideline 36, FC2/FC3): một cảm biến sai."},
        "check": {"en": "Check the mixed, return and outdoor air sensors and where they sit.",
                  "vi": "Kiểm tra các cảm biến gió hòa trộn, gió hồi, ngoài trời và vị trí "
                        "lắp."},
    },
    "meter_reset": {
        "title": {"en": "Meter register went back", "vi": "Chỉ số công tơ bị lùi"},
        "cause": {"en": "The energy register of {target} fell by {drop_kwh} kWh: a reset, a "
                        "replaced meter or a rollover.",
                  "vi": "Chỉ số điện năng của {target} giảm {drop_kwh} kWh: công tơ bị đặt "
                        "lại, được thay hoặc quay vòng."},
        "check": {"en": "Ask whether the meter was replaced or reset; the reports use the "
                        "power readings across the gap.",
                  "vi": "Hỏi xem công tơ có được thay hoặc đặt lại không; báo cáo dùng số đo "
                        "công suất qua khoảng này."},
    },
    "meter_dropout": {
        "title": {"en": "Meter not reporting", "vi": "Công tơ không gửi số liệu"},
        "cause": {"en": "{target} {how} for {hours} h where it usually reads something "
                        "(about {unmetered_kwh} kWh not recorded).",
                  "vi": "{target} {how} trong {hours} giờ trong khi thường có số đo (khoảng "
                        "{unmetered_kwh} kWh không được ghi)."},
        "check": {"en": "Check the meter's communication (gateway, wiring, address) and its "
                        "current transformers.",
                  "vi": "Kiểm tra truyền thông của công tơ (bộ chuyển đổi, dây, địa chỉ) và "
                        "biến dòng."},
    },
    "meter_tree_mismatch": {
        "title": {"en": "Sub-meters read more than their main meter",
                  "vi": "Công tơ nhánh đọc nhiều hơn công tơ tổng"},
        "cause": {"en": "The meters under {target} read {children_kw} kW together while it read "
                        "{parent_kw} kW, for {hours} h.",
                  "vi": "Các công tơ nhánh dưới {target} cộng lại đọc {children_kw} kW trong khi "
                        "nó đọc {parent_kw} kW, trong {hours} giờ."},
        "check": {"en": "Check the current transformer ratios and wiring of each meter, and "
                        "that no load is counted twice in the meter tree of the site file.",
                  "vi": "Kiểm tra tỷ số và cách đấu biến dòng của từng công tơ, và cây công tơ "
                        "trong tệp cấu hình không tính một phụ tải hai lần."},
    },
    "base_load_high": {
        "title": {"en": "Night load higher than usual", "vi": "Phụ tải ban đêm cao hơn thường lệ"},
        "cause": {"en": "{target} drew {night_kw} kW at night against {usual_kw} kW {basis}: "
                        "equipment left on, or loads creeping up.",
                  "vi": "{target} tiêu thụ {night_kw} kW ban đêm so với {usual_kw} kW {basis}: "
                        "thiết bị để bật, hoặc phụ tải tăng dần."},
        "check": {"en": "Walk the building at night: computers, water heaters, printers, "
                        "server room, pumps.",
                  "vi": "Đi kiểm tra tòa nhà ban đêm: máy tính, bình nóng lạnh, máy in, "
                        "phòng máy chủ, bơm."},
    },
    "off_day_energy_high": {
        "title": {"en": "A closed day used more than usual",
                  "vi": "Ngày nghỉ dùng điện nhiều hơn thường lệ"},
        "cause": {"en": "{target} used {kwh} kWh on a closed day against a usual {usual_kwh} "
                        "kWh.",
                  "vi": "{target} dùng {kwh} kWh vào ngày nghỉ so với thường lệ {usual_kwh} "
                        "kWh."},
        "check": {"en": "Check what ran: AC or lights held on, a weekend event not in the "
                        "calendar.",
                  "vi": "Kiểm tra cái gì đã chạy: điều hòa hoặc đèn bị giữ bật, một sự kiện "
                        "cuối tuần chưa có trong lịch."},
    },
}

WORDS = {
    "closed_day": {"en": " (a closed day)", "vi": " (ngày nghỉ)"},
    "window": {"en": " The zone warmed while the outdoor air was hotter: a window or door "
                     "may be open.",
               "vi": " Khu vực nóng lên khi ngoài trời nóng hơn: có thể cửa sổ hoặc cửa ra "
                     "vào đang mở."},
    "missing": {"en": "sent nothing", "vi": "không gửi gì"},
    "forecast": {"en": "forecast", "vi": "theo dự báo"},
    "usual": {"en": "on usual nights", "vi": "của các đêm thường lệ"},
    "zero": {"en": "read zero", "vi": "đọc bằng 0"},
}


def fault_text(rule: str, evidence: dict, target: str, lang: str = "en") -> dict[str, str]:
    """Title, cause and check of a fault in `lang` (vi or en)."""
    lang = "vi" if lang == "vi" else "en"
    t = TEXTS.get(rule)
    if t is None:
        return {"title": rule, "cause": "", "check": ""}
    ev: dict[str, Any] = {k: _fmt(v, lang) for k, v in evidence.items() if k != "points"}
    ev["target"] = target
    ev["closed"] = WORDS["closed_day"][lang] if evidence.get("closed_day") else ""
    ev["window"] = WORDS["window"][lang] if evidence.get("window_likely") else ""
    ev["basis"] = WORDS["forecast" if evidence.get("from_forecast") else "usual"][lang]
    if "how" in evidence:
        ev["how"] = WORDS.get(str(evidence["how"]), {}).get(lang, "")

    class Missing(dict):
        def __missing__(self, key: str) -> str:
            return "–"

    return {k: t[k][lang].format_map(Missing(ev)) for k in ("title", "cause", "check")}


def _fmt(v: Any, lang: str) -> Any:
    if isinstance(v, float):
        return number(v, lang, 1 if abs(v) < 100 else 0)
    return v
