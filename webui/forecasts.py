"""Forecasts: per meter, the selected model with its backtest scores and the next hours."""

from __future__ import annotations

from flask import Blueprint, render_template

from webui import ctx, store

bp = Blueprint("forecasts", __name__, url_prefix="/forecasts")


@bp.route("/")
def index():
    site = ctx()["site"]
    rows = []
    fcs = store().latest_forecasts()
    for m in site.meters:
        model = store().selected_model(m.id)
        rows.append({"meter": m, "model": model, "forecast": fcs.get(m.id, [])[:48]})
    return render_template("forecasts.html", rows=rows)
