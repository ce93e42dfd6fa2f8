from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import schemas as s
from api.auth import allow, broker_context, current_actor
from broker.auth import ActorKind
from broker.storefront import services
from web.links import embed_snippet

blp = Blueprint("storefront", __name__, url_prefix="/api/v1", description="The manufacturer's storefront")


def _out(maker) -> dict:
    return {
        "slug": maker.slug, "name": maker.name, "logo_url": maker.logo_url, "color_primary": maker.color_primary,
        "color_accent": maker.color_accent, "locale": maker.locale, "custom_domain": maker.custom_domain,
        "custom_domain_verified": maker.custom_domain is not None and maker.domain_verified_at is not None,
        "frame_origins": maker.frame_origins, "return_window_days": maker.return_window_days,
        "embed_snippet": embed_snippet(maker),
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
