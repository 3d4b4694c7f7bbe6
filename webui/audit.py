"""Audit: the write ledger and every user action, filterable."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from webui import ctx, store

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.route("/")
def index():
    point = request.args.get("point", "").strip()
    user = request.args.get("user", "").strip()
    writes = store().writes(point=point or None, limit=200)
    actions = store().audit_rows(200, user=user or None)
    names = {p.id: p.name or p.id for p in ctx()["site"].points}  # what a person reads
    return render_template("audit.html", writes=writes, actions=actions, point=point, user=user,
                           names=names)
