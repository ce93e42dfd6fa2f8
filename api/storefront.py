from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api import schemas as s
from api.auth import allow, broker_context, current_actor
from broker.auth import ActorKind
from broker.storefront import services

blp = Blueprint("storefront", __name__, url_prefix="/api/v1", description="The manufacturer's storefront")


def _out(maker) -> dict:
    src = url_for("store.embed_js", slug=maker.slug, _external=True)
    return {
        "slug": maker.slug, "name": maker.name, "logo_url": maker.logo_url, "color_primary": maker.color_primary,
        "color_accent": maker.color_accent, "locale": maker.locale, "custom_domain": maker.custom_domain,
        "frame_origins": maker.frame_origins, "return_window_days": maker.return_window_days,
        "embed_snippet": f'<script src="{src}" data-store="{maker.slug}"></script>',
    }


@blp.route("/storefront")
class Storefront(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.BrandingIn)
    @blp.response(200, s.BrandingOut)
    def patch(self, data):
        """Set the store's look: name, logo, colours, locale, custom domain, the
        origins allowed to embed it, and the return window."""
        maker = services.update_branding(broker_context(), current_actor(), services.Branding(**data))
        return _out(maker)
