"""The retailer portal under /portal/."""

from __future__ import annotations

from flask import Blueprint, render_template

from broker.accounts.models import Role
from web.security import check_csrf, signed_in

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="templates")
bp.before_request(check_csrf)


@bp.get("/")
@signed_in(Role.RETAILER)
def board():
    return render_template("app/message.html", title="Board", message="")


@bp.get("/dealers")
@signed_in(Role.RETAILER)
def dealers():
    return render_template("app/message.html", title="Manufacturers", message="")
