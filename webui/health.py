"""/healthz: for the agency's monitoring (no login). Whether the runtime's poll, strategy and
writer jobs ran recently, how stale the newest reading is, the open critical alarms and the
notifications waiting. 200 when all is well, 503 otherwise; numbers only, no names."""

from __future__ import annotations

from flask import Blueprint, jsonify

from bems import state
from bems.status import stale_after
from webui import now, store

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    s = store()
    t = now()
    limit = stale_after(s)  # three poll cycles, at least 15 minutes
    jobs = s.get(state.JOBS_ALIVE)
    out: dict = {"time": t.isoformat(timespec="seconds"), "limit_s": limit, "jobs": {}}
    ok = True
    wanted = ("poll", "strategies", "writer")
    for name in wanted:
        ts = jobs.get(name)
        age = None if not isinstance(ts, int) else int(t.timestamp() - ts)
        alive = age is not None and age <= limit
        out["jobs"][name] = {"age_s": age, "ok": alive}
        ok &= alive
    newest = s.newest_reading()
    out["data_age_s"] = None if newest is None else int((t - newest).total_seconds())
    ok &= out["data_age_s"] is not None and out["data_age_s"] <= limit
    out["critical_alarms_open"] = sum(a["severity"] == "critical" for a in s.open_alarms())
    out["notifications_waiting"] = s.count_unsent_notifications()
    out["ok"] = bool(ok)
    resp = jsonify(out)
    resp.status_code = 200 if ok else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp
