from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples as ex
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from broker.auth import ActorKind
from broker.storefront import services
from web.links import embed_snippet

blp = Blueprint("storefront", __name__, url_prefix="/api/v1",
                description="The storefront's look: name, logo, colours, language, its own domain, where it may "
                            "be embedded, and the return window.")


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
    @blp.arguments(s.BrandingIn, example=ex.BRANDING_IN)
    @blp.response(200, s.BrandingOut, example=ex.BRANDING,
                  description="The storefront as it is now, with the snippet that embeds it.")
    def patch(self, data):
        """Change your storefront.

        Its name, logo, colours, locale, custom domain, the origins allowed to embed it, and
        the return window. Send only what changes.

        :raise 422: A field is invalid: a colour that is not `#rrggbb`, an unknown locale, an origin that is
            not `scheme://host[:port]`, a domain that is Broker's own or another store's, a return window
            outside 0 to 365 days.
        """
        maker = services.update_branding(broker_context(), current_actor(), services.Branding(**data))
        return _out(maker)
