"""Zone models learned from what BEMS sees — never from the simulator's internals.

Per zone, a grey-box resistance–capacitance model on a 15-minute grid with two temperatures:
the room air `Ta` (measured) and a latent "mass" `Tm` standing for the walls, floor and
glazing (not measured; estimated by a first-order filter of the measured air and outdoor
temperatures, so it is known at every step without a sensor):

    Tm[k+1] = Tm[k] + α (Ta[k] − Tm[k]) + β (To[k] − Tm[k])
    Ta[k+1] = Ta[k] + a (To[k] − Ta[k]) + b (Tm[k] − Ta[k]) + c occ[k] + d·h(k) + e − Q[k]

with `h(k)` the clear-sky sun on the roof and on each façade (weights ≥ 0) and `Q ≥ 0` the
cooling the unit gives, in kelvin per step. `α, β` are chosen on a grid; for each, `a, b, c, d,
e` come from least squares on the steps the AC was off (nights, weekends, lunch breaks); the
pair that best predicts 4 hours of free-floating temperature wins. The cooling a step needed is
then what the free model predicts less what happened; the unit's capacity is the 95th percentile
of it while pulling down.

What people feel is estimated as the operative temperature `(Ta + Tm) / 2`: the mean of the air
and of the surfaces around it (ISO 7726 at low air speed), the surfaces being the mass node.

One building model turns cooling into electricity from the AC sub-meter:
`P_ac = k0 · ΣA·Q + k1 · ΣA·Q·(To − 25) + f · ΣA·on + p0` (A: zone floor area).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from bems.calendar import SiteCalendar
from bems.site import Site

STEP_S = 900
STEP_H = STEP_S / 3600
MIN_OFF_STEPS = 96  # a day of free-floating steps before a zone's model is trusted
MAX_RMSE_4H = 1.5  # K: a worse zone model is unfit, and the rule set controls
KAPPA = 0.5  # operative = air + κ (surfaces − air)


def sun(epochs: np.ndarray, latitude: float, longitude: float) -> np.ndarray:
    """Clear-sky sunshine (kW/m²) on a horizontal roof and on walls facing north, east, south
    and west, at UTC epochs: the shapes the sun's gains take through the day and the year.
    (Solar position by the usual declination / equation-of-time formulas; beam by Meinel's
    clear-sky law, diffuse a tenth of it.) Each zone learns its own non-negative weights."""
    t = np.asarray(epochs, float)
    doy = (t / 86400.0) % 365.2425
    g = 2 * math.pi * (doy - 81) / 365.0
    decl = np.radians(23.44) * np.sin(g)
    eot_min = 9.87 * np.sin(2 * g) - 7.53 * np.cos(g) - 1.5 * np.sin(g)
    solar_h = ((t % 86400) / 3600 + longitude / 15 + eot_min / 60) % 24
    ha = np.radians(15 * (solar_h - 12))
    lat = math.radians(latitude)
    sin_alt = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(ha)
    alt = np.arcsin(np.clip(sin_alt, -1, 1))
    up = sin_alt > 0.02
    beam = np.where(up, 1.0 * 0.7 ** (np.where(up, 1 / np.maximum(sin_alt, 0.02), 0) ** 0.678),
                    0.0)
    # azimuth from north, clockwise
    cos_az = (np.sin(decl) - np.sin(alt) * np.sin(lat)) / np.maximum(np.cos(alt) * np.cos(lat),
                                                                    1e-9)
    az = np.arccos(np.clip(cos_az, -1, 1))
    az = np.where(ha > 0, 2 * math.pi - az, az)
    out = [beam * np.maximum(sin_alt, 0) + 0.1 * beam]
    for face in (0, 90, 180, 270):
        cos_i = np.cos(alt) * np.cos(az - math.radians(face))
        out.append(beam * np.maximum(cos_i, 0) + 0.05 * beam)
    return np.stack(out, axis=-1)


@dataclass
class ZoneModel:
    zone: str
    alpha: float
    beta: float
    a: float
    b: float
    c: float
    d: list[float]  # the sun's on the air, by façade (roof, N, E, S, W)
    e: float
    gm: float  # occupancy's radiant gains onto the surfaces, K per step
    sm: list[float]  # the sun's, by façade (roof, N, E, S, W)
    qmax: float  # K per step at full capacity
    qhold: float  # K per step the unit usually gives holding the setpoint
    rmse_1h: float
    rmse_4h: float
    samples: int
    fit: bool
    why: str = ""

    def free_delta(self, ta, tm, to, occ, harm):
        """The air's change in a step without cooling (arrays or scalars)."""
        return (self.a * (to - ta) + self.b * (tm - ta) + self.c * occ
                + harm @ np.asarray(self.d) + self.e)

    def free_step(self, ta, tm, to, occ, harm):
        """One step without cooling: (Ta, Tm) next."""
        tm_n = (tm + self.alpha * (ta - tm) + self.beta * (to - tm) + self.gm * occ
                + harm @ np.asarray(self.sm))
        return ta + self.free_delta(ta, tm, to, occ, harm), tm_n

    def mass(self, ta, to, occ, harm, tm0: float | None = None) -> np.ndarray:
        """The surfaces' temperature along a measured history of air and outdoor temperature."""
        base = mass_filter(ta, to, self.alpha, self.beta, tm0)
        pole = 1 - self.alpha - self.beta
        return base + self.gm * _gain_filter(occ, pole) + _gain_filter(harm, pole) @ np.asarray(
            self.sm)

    def operative(self, ta, tm):
        return ta + KAPPA * (tm - ta)


@dataclass
class BuildingModel:
    fitted_at: str
    days: float
    zones: dict[str, ZoneModel]
    k0: float = 0.0  # kW per (K/step · m²)
    k1: float = 0.0  # ... per K of outdoor temperature over 25 °C
    fan_kw_m2: float = 0.0
    # kW per m² per kelvin the air is held under 27 °C while on: what the sensible balance
    # misses (outdoor air, moisture, fans moving more air) that a lower setpoint costs
    k_cold: float = 0.0
    p0: float = 0.0
    # kW per m² an air handler serves while it runs for any of its zones (its fan at least at
    # its minimum, its coil at part load): a zone cooled alone pays for the whole unit
    ahu_kw_m2: float = 0.0
    elec_r2: float = 0.0
    elec_heldout_cv_pct: float | None = None  # CV(RMSE) of the AC's kW on held-out days
    other_kw: dict[str, list[float]] = field(default_factory=dict)  # "work"/"off": 24 values

    def elec_coef(self) -> np.ndarray:
        """The electricity model's coefficients, in the order of `electricity_terms`."""
        return np.array([self.k0, self.k1, self.fan_kw_m2, self.p0, self.k_cold, self.ahu_kw_m2])

    def usable(self) -> dict[str, ZoneModel]:
        return {z: m for z, m in self.zones.items() if m.fit}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "BuildingModel":
        d = dict(d)
        d["zones"] = {k: ZoneModel(**v) for k, v in d.get("zones", {}).items()}
        return cls(**d)


@dataclass
class History:
    """Readings on the 15-minute grid: `mean[point][i]` at UTC epoch `t0 + i·900` (NaN where
    nothing was read). The command in force during step i → i+1 is at index i+1."""

    t0: int
    n: int
    mean: dict[str, np.ndarray]

    def get(self, point: str | None) -> np.ndarray:
        if point and point in self.mean:
            return self.mean[point]
        return np.full(self.n, np.nan)

    def local_hours(self, site: Site) -> np.ndarray:
        off = site.tz.utcoffset(dt.datetime(2026, 1, 1)).total_seconds()  # no DST in VN
        return ((self.t0 + off + np.arange(self.n) * STEP_S) % 86400) / 3600

    def epochs(self) -> np.ndarray:
        return self.t0 + np.arange(self.n) * STEP_S

    def sun(self, site: Site) -> np.ndarray:
        return sun(self.epochs(), site.latitude, site.longitude)


def history_from_store(site: Site, store, start: dt.datetime, end: dt.datetime) -> History:
    from bems.storage.common import to_epoch

    t0 = to_epoch(start) // STEP_S * STEP_S
    t1 = -(-to_epoch(end) // STEP_S) * STEP_S
    n = max(0, (t1 - t0) // STEP_S)
    grid = store.rollup_grid("15min", points_needed(site), t0, n)
    mean = {p: np.array(v, float) for p, v in grid.items()}
    return History(t0, n, mean)


def points_needed(site: Site) -> list[str]:
    pts = [p.id for p in site.points if p.kind == "outdoor_temperature"]
    for z in site.zones:
        pts += [q for q in (z.temperature, z.cooling_setpoint, z.ac_status, z.occupancy) if q]
    for m in site.meters:
        if m.measures in ("main", "ac") and m.power:
            pts.append(m.power)
    return list(dict.fromkeys(pts))


def outdoor(site: Site, h: History) -> np.ndarray:
    for p in site.points:
        if p.kind == "outdoor_temperature":
            v = h.get(p.id)
            if np.isfinite(v).any():
                return v
    return np.full(h.n, np.nan)


def _ffill(x: np.ndarray) -> np.ndarray:
    x = np.array(x, float)
    ok = np.isfinite(x)
    if not ok.any():
        return x
    idx = np.where(ok, np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = x[idx]
    out[:np.argmax(ok)] = x[np.argmax(ok)]
    return out


def mass_filter(ta: np.ndarray, to: np.ndarray, alpha: float, beta: float,
                tm0: float | None = None) -> np.ndarray:
    """The latent surface temperature from the air and outdoor temperatures."""
    from scipy.signal import lfilter

    ta, to = _ffill(ta), _ffill(to)
    drive = alpha * ta + beta * to
    pole = 1 - alpha - beta
    start = ta[0] if tm0 is None else tm0
    tm, _ = lfilter([0.0, 1.0], [1.0, -pole], drive, zi=[pole * start])
    tm[0] = start
    return tm


def _gain_filter(x: np.ndarray, pole: float) -> np.ndarray:
    """y[k+1] = pole·y[k] + x[k], started at the steady state of x's mean (per column)."""
    from scipy.signal import lfilter

    x = np.nan_to_num(np.asarray(x, float))
    y0 = x.mean(axis=0) / (1 - pole)
    if x.ndim == 1:
        y, _ = lfilter([0.0, 1.0], [1.0, -pole], x, zi=[pole * y0])
        y[0] = y0
        return y
    y, _ = lfilter([0.0, 1.0], [1.0, -pole], x, axis=0, zi=(pole * y0)[None, :])
    y[0] = y0
    return y


def _model(zone_id: str, th: np.ndarray, samples: int) -> ZoneModel:
    th = [float(x) for x in th]
    return ZoneModel(zone_id, th[0], th[1], th[2], th[3], th[4], th[5:10], th[10], th[11],
                     th[12:17], 0.0, 0.0, 0.0, 0.0, samples, True)


def _theta(m: ZoneModel) -> list[float]:
    return [m.alpha, m.beta, m.a, m.b, m.c, *m.d, m.e, m.gm, *m.sm]


def fit_zone(zone_id: str, ta, to, ac_next, occ, harm, sp_next=None,
             day: np.ndarray | None = None, previous: ZoneModel | None = None) -> ZoneModel:
    """Identify one zone's model. `ac_next[i]`: the AC state during step i → i+1.

    A one-step least-squares start, then the parameters that best predict 4 hours of
    free-floating temperature (output error) on the AC-off windows of two days in three; the
    fit error shown to people is measured on the third (`day`: each step's day number)."""
    from scipy.optimize import least_squares, lsq_linear

    ta, to, occ = np.asarray(ta, float), np.asarray(to, float), np.nan_to_num(occ)
    n = len(ta)
    dta = np.full(n, np.nan)
    dta[:-1] = ta[1:] - ta[:-1]
    valid = np.isfinite(dta) & np.isfinite(to) & np.isfinite(ta) & np.isfinite(ac_next)
    off = valid & (ac_next < 0.5)
    on = valid & (ac_next >= 0.5)
    # every third day is held out: the fit error people see is measured on days not fitted
    held = np.zeros(n, bool) if day is None else (np.asarray(day) % 3 == 0)
    starts, ends = _windows(off & ~held, n)
    h_starts, h_ends = _windows(off & held, n)
    if off.sum() < MIN_OFF_STEPS or len(starts) < 8:
        return ZoneModel(zone_id, 0, 0, 0, 0, 0, [0] * 5, 0, 0, [0] * 5, 0, 0, math.inf, math.inf,
                         int(off.sum()), False, "too little data with the AC off")
    alpha, beta = 0.02, 0.01
    pole = 1 - alpha - beta
    X = np.column_stack([to - ta, mass_filter(ta, to, alpha, beta) - ta, _gain_filter(occ, pole),
                         _gain_filter(harm, pole), occ, harm, np.ones(n)])
    fit_rows = off & ~held
    p = lsq_linear(X[fit_rows], dta[fit_rows],
                   bounds=([0, 1e-3] + [0] * 6 + [-np.inf] + [0] * 5 + [-np.inf],
                           [0.5, 1.0] + [np.inf] * 13)).x
    th0 = np.r_[alpha, beta, p[0], p[1], p[8], p[9:14], p[14], p[2] / p[1], p[3:8] / p[1]]
    lo = np.r_[1e-3, 0, 0, 0, -2, [0] * 5, -2, 0, [0] * 5]
    hi = np.r_[0.3, 0.1, 0.5, 1.0, 2, [5] * 5, 2, 1, [5] * 5]
    nfev = 60
    if previous is not None and previous.fit:  # last night's parameters: a few steps suffice
        th0, nfev = np.array(_theta(previous)), 20
    th0 = np.clip(th0, lo + 1e-9, hi - 1e-9)
    samples = int(off.sum())

    def residuals(th):
        return np.nan_to_num(_window_errors_batch(th, ta, to, occ, harm, starts, ends).ravel())

    def jacobian(th):
        # scipy's two-point differences, every column's run at once (a step that would leave
        # the bounds goes the other way, as scipy's does)
        step = FD_STEP * np.maximum(1.0, np.abs(th))
        step = np.where(th + step > hi, -step, step)
        e = _window_errors_batch(np.vstack([th, th + np.diag(step)]), ta, to, occ, harm,
                                 starts, ends)
        e = np.nan_to_num(e.reshape(len(e), -1))
        return ((e[1:] - e[0]) / step[:, None]).T

    try:
        th = least_squares(residuals, th0, jac=jacobian, bounds=(lo, hi), max_nfev=nfev,
                           x_scale="jac").x
    except (ValueError, np.linalg.LinAlgError):
        th = th0
    m = _model(zone_id, th, samples)
    ev_s, ev_e = (h_starts, h_ends) if len(h_starts) >= 4 else (starts, ends)
    err = _window_errors(m, ta, to, occ, harm, ev_s, ev_e)
    r1 = _rmse(err[:, 3])
    r4 = _rmse(err[:, 15]) if np.isfinite(err[:, 15]).any() else r1
    m.rmse_1h, m.rmse_4h = round(r1, 3), round(r4, 3)
    tm = m.mass(ta, to, occ, harm)
    # cooling given: predicted free change less what happened
    q = m.free_delta(ta, tm, to, occ, harm) - dta
    pulling = on & (q > 0)
    if sp_next is not None:
        sp_next = np.asarray(sp_next, float)
        pulling &= np.nan_to_num(ta - sp_next, nan=0) > 0.5
    qs = q[pulling]
    m.qmax = float(np.percentile(qs, 95)) if len(qs) >= 8 else float(
        np.percentile(q[on & (q > 0)], 95)) if (on & (q > 0)).sum() >= 8 else 1.0
    m.qmax = min(max(m.qmax, 0.2), 5.0)
    holding = on & (q > 0) & ~pulling
    m.qhold = float(np.median(q[holding])) if holding.sum() >= 8 else m.qmax / 3
    m.qhold = min(max(m.qhold, 0.1), m.qmax)
    if not math.isfinite(r4) or r4 > MAX_RMSE_4H:
        m.fit, m.why = False, f"4-hour error {r4:.2f} K is over {MAX_RMSE_4H:g} K"
    return m


def _rmse(e: np.ndarray) -> float:
    e = e[np.isfinite(e)]
    return math.sqrt(float(np.mean(np.square(e)))) if len(e) else math.inf


def _windows(off: np.ndarray, stop: int, first: int = 0, length: int = 16
             ) -> tuple[np.ndarray, np.ndarray]:
    """Starts (every hour) and ends of the free-floating windows inside the AC-off runs."""
    starts, ends = [], []
    for i, j in _runs(off, 8):
        i, j = max(i, first), min(j, stop)
        for s in range(i, j - 4, 4):
            starts.append(s)
            ends.append(min(s + length, j))
    return np.array(starts, int), np.array(ends, int)


def _window_errors(m: ZoneModel, ta, to, occ, harm, starts, ends, length: int = 16
                   ) -> np.ndarray:
    """Free-run prediction errors (windows × steps ahead; NaN past a window's end), every
    window simulated at once."""
    return _window_errors_batch(np.array(_theta(m)), ta, to, occ, harm, starts, ends, length)[0]


# the relative step of the fit's finite differences (scipy's two-point default: √ε)
FD_STEP = float(np.sqrt(np.finfo(float).eps))


def _window_errors_batch(th, ta, to, occ, harm, starts, ends, length: int = 16) -> np.ndarray:
    """`_window_errors` for many parameter sets at once (rows of `th`, in `_theta`'s order):
    parameter sets × windows × steps ahead. The step is `ZoneModel.free_step`'s, with the
    parameters as columns (a test holds the two equal)."""
    th = np.atleast_2d(np.asarray(th, float))
    alpha, beta, a, b, c = (th[:, i:i + 1] for i in range(5))
    d, e, gm, sm = th[:, 5:10], th[:, 10:11], th[:, 11:12], th[:, 12:17]
    tm_all = np.stack([_model("", row, 0).mass(ta, to, occ, harm) for row in th])
    err = np.full((len(th), len(starts), length), np.nan)
    a_ = np.repeat(ta[starts][None, :], len(th), axis=0)
    t_ = tm_all[:, starts]
    for k in range(length):
        idx = np.minimum(starts + k, len(ta) - 2)
        to_k, occ_k, h_k = to[idx], occ[idx], harm[idx]
        free = a * (to_k - a_) + b * (t_ - a_) + c * occ_k + (h_k @ d.T).T + e
        t_ = t_ + alpha * (a_ - t_) + beta * (to_k - t_) + gm * occ_k + (h_k @ sm.T).T
        a_ = a_ + free
        live = starts + k < ends
        err[:, live, k] = (a_ - ta[idx + 1])[:, live]
    return err


def _runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    out, i, n = [], 0, len(mask)
    while i < n:
        if mask[i]:
            j = i
            while j < n and mask[j]:
                j += 1
            if j - i >= min_len:
                out.append((i, j))
            i = j
        else:
            i += 1
    return out


# k0, k1, fan_kw_m2, p0, k_cold, ahu_kw_m2: only k1 (kW per K of outdoor temperature) may be
# negative
ELEC_BOUNDS = ([0, -np.inf, 0, 0, 0, 0], [np.inf] * 6)


def fit(site: Site, h: History, fitted_at: dt.datetime,
        previous: BuildingModel | None = None) -> BuildingModel:
    """Every zone's model and the building's electricity model from a history (`previous`:
    last night's, to start from)."""
    to = outdoor(site, h)
    hours = h.local_hours(site)
    harm = h.sun(site)
    days = local_days(site, h)
    calendar = SiteCalendar(site)
    zones: dict[str, ZoneModel] = {}
    for z in site.zones:
        if not (z.temperature and z.ac_status):
            continue
        ta, ac_next, sp_next, occ = _zone_inputs(site, calendar, z, h)
        zones[z.id] = fit_zone(z.id, ta, to, ac_next, occ, harm, sp_next, days,
                               previous.zones.get(z.id) if previous else None)
    bm = BuildingModel(fitted_at.isoformat(), round(h.n * STEP_H / 24, 2), zones)
    fit_electricity(site, h, bm)
    ac, main = ac_meter(site), site.main_meter()
    if ac is not None and main is not None and main.power:
        other = h.get(main.power) - h.get(ac.power)
        bm.other_kw = _hourly_profile(site, calendar, h, other, hours)
    return bm


def ac_meter(site: Site):
    """The site's AC meter with a power point (None: the electricity model cannot be fitted)."""
    return next((m for m in site.meters if m.measures == "ac" and m.power), None)


def fit_electricity(site: Site, h: History, bm: BuildingModel) -> None:
    """The building's electricity model (`BuildingModel.elec_coef()`, R², held-out error),
    fitted on the AC meter's kW against `electricity_terms` of `bm`'s zone models; nothing
    where the site has no AC meter or a day of readings is missing."""
    from scipy.optimize import lsq_linear

    ac = ac_meter(site)
    if ac is None:
        return
    p = h.get(ac.power)
    ok = np.isfinite(p) & np.isfinite(outdoor(site, h))
    if ok.sum() <= 96:
        return
    X = electricity_terms(site, h, bm.zones)[ok]
    sol = lsq_linear(X, p[ok], bounds=ELEC_BOUNDS)
    bm.k0, bm.k1, bm.fan_kw_m2, bm.p0, bm.k_cold, bm.ahu_kw_m2 = (float(x) for x in sol.x)
    resid = p[ok] - X @ sol.x
    bm.elec_r2 = round(float(1 - resid.var() / max(p[ok].var(), 1e-9)), 3)
    bm.elec_heldout_cv_pct = _heldout_cv(X, p[ok], local_days(site, h)[ok])


def _heldout_cv(X: np.ndarray, y: np.ndarray, day: np.ndarray) -> float | None:
    """The electricity model's error on days it did not see: fitted on two days in three,
    the CV(RMSE) of the AC's kW on the third, in % (None: too few days to tell)."""
    from scipy.optimize import lsq_linear

    held = np.asarray(day) % 3 == 0
    if held.sum() < 96 or (~held).sum() < 96 or abs(float(np.mean(y[held]))) < 1e-6:
        return None
    sol = lsq_linear(X[~held], y[~held], bounds=ELEC_BOUNDS)
    e = y[held] - X[held] @ sol.x
    return round(100 * math.sqrt(float(np.mean(e ** 2))) / float(np.mean(y[held])), 1)


def _zone_inputs(site: Site, calendar: SiteCalendar, z, h: History):
    """A zone's air temperature, AC status and setpoint of the next step, and occupancy (its
    sensor, else its schedule)."""
    ta = h.get(z.temperature)
    ac_next = np.append(h.get(z.ac_status)[1:], np.nan)
    sp_next = np.append(h.get(z.cooling_setpoint)[1:], np.nan)
    occ = h.get(z.occupancy) if z.occupancy else np.zeros(h.n)
    if not z.occupancy or not np.isfinite(occ).any():
        occ = _schedule_occupancy(site, calendar, z, h)
    return ta, ac_next, sp_next, occ


def electricity_terms(site: Site, h: History, zones: dict[str, ZoneModel]) -> np.ndarray:
    """The electricity model's regressors by step, (n, 5), over the fitted zones: cooling
    (the sensible heat each zone's model says was removed, by area), cooling × (outdoor − 25),
    area on, 1, area on × kelvins under 27 °C, and the area served by air handlers running
    (`ahu_on`). `BuildingModel.elec_coef()` times these is the AC's kW."""
    to = outdoor(site, h)
    harm = h.sun(site)
    calendar = SiteCalendar(site)
    aq, aqt, aon, acold = np.zeros(h.n), np.zeros(h.n), np.zeros(h.n), np.zeros(h.n)
    on: dict[str, np.ndarray] = {}
    for z in site.zones:
        m = zones.get(z.id)
        if m is None or not m.fit or not (z.temperature and z.ac_status):
            continue
        ta, ac_next, _sp, occ = _zone_inputs(site, calendar, z, h)
        occ = np.nan_to_num(occ)
        tm = m.mass(ta, to, occ, harm)
        pred = m.free_delta(ta, tm, to, occ, harm)
        q = np.zeros(h.n)
        q[:-1] = np.clip(pred[:-1] - (ta[1:] - ta[:-1]), 0, None)
        q = np.where(np.nan_to_num(ac_next) >= 0.5, np.nan_to_num(q), 0.0)
        aq[1:] += z.area_m2 * q[:-1]
        aqt[1:] += z.area_m2 * q[:-1] * (np.nan_to_num(to[:-1], nan=25) - 25)
        on_next = np.nan_to_num(ac_next[:-1]) >= 0.5
        aon[1:] += z.area_m2 * on_next
        acold[1:] += z.area_m2 * on_next * np.clip(27.0 - np.nan_to_num(ta[1:], nan=27.0), 0, 5)
        on[z.id] = np.append(0.0, on_next)
    return np.column_stack([aq, aqt, aon, np.ones(h.n), acold, ahu_on(site, on, h.n)])


def air_handler_areas(site: Site, zone_ids) -> list[tuple[float, list[int]]]:
    """Each air handler serving any of `zone_ids`: (the floor area of every zone it serves,
    the indexes in `zone_ids` of those it serves)."""
    index = {z: i for i, z in enumerate(zone_ids)}
    area = {z.id: z.area_m2 for z in site.zones}
    out = []
    for a in site.air_handlers:
        served = [index[z] for z in a.zones if z in index]
        if served:
            out.append((sum(area.get(z, 0.0) for z in a.zones), served))
    return out


def ahu_on(site: Site, on: dict[str, np.ndarray], n: int) -> np.ndarray:
    """m² served by air handlers that run (any zone they serve on), by step."""
    ids = list(on)
    out = np.zeros(n)
    for area, served in air_handler_areas(site, ids):
        out += area * np.max([on[ids[i]] for i in served], axis=0)
    return out


def local_days(site: Site, h: History) -> np.ndarray:
    """The local date (proleptic ordinal) of each step."""
    off = site.tz.utcoffset(dt.datetime(2026, 1, 1)).total_seconds()
    return ((h.t0 + off + np.arange(h.n) * STEP_S) // 86400).astype(int) + \
        dt.date(1970, 1, 1).toordinal()


def occupancy_grid(site: Site, calendar: SiteCalendar, schedule: str, t0: int, n: int
                   ) -> np.ndarray:
    """1 where a schedule is occupied at the start of each 15-minute step from UTC epoch t0."""
    out = np.zeros(n)
    if not schedule:
        return out
    for i in range(n):
        local = dt.datetime.fromtimestamp(t0 + i * STEP_S, site.tz).replace(tzinfo=None)
        out[i] = 1.0 if calendar.occupied(schedule, local) else 0.0
    return out


def _schedule_occupancy(site: Site, calendar: SiteCalendar, z, h: History) -> np.ndarray:
    return occupancy_grid(site, calendar, z.schedule, h.t0, h.n)


def _hourly_profile(site, calendar, h, values, hours) -> dict[str, list[float]]:
    from bems.calendar import main_schedule

    sched = main_schedule(site)
    days = local_days(site, h)
    kinds = {d: bool(sched and calendar.periods(sched, dt.date.fromordinal(d)))
             for d in set(days.tolist())}
    work = np.array([kinds[d] for d in days], bool)
    out = {}
    for kind, mask in (("work", work), ("off", ~work)):
        prof = []
        for hr in range(24):
            sel = mask & (hours.astype(int) == hr) & np.isfinite(values)
            prof.append(round(float(np.median(values[sel])), 2) if sel.any() else 0.0)
        out[kind] = prof
    return out
