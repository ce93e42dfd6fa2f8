"""The manufacturer console under /console/."""

from __future__ import annotations

from flask import Blueprint, render_template

from broker.accounts.models import Role
from web.security import check_csrf, signed_in

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
bp.before_request(check_csrf)


@bp.get("/")
@signed_in(Role.MANUFACTURER)
def dashboard():
    return render_template("app/message.html", title="Dashboard", message="")
