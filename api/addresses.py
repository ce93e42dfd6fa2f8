"""Address formats: what a country's address form asks for, for pages and clients
that re-shape their form when the country changes."""

from __future__ import annotations

import dataclasses

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples as ex
from api import schemas as s
from broker.addresses import address_form, countries
from broker.errors import NotFound

blp = Blueprint("addresses", __name__, url_prefix="/api/v1", description="Address formats: what each country's address form asks for (fields, names, which are required, regions), for pages and clients that re-shape their form when the country changes.")


@blp.route("/address-formats")
class Countries(MethodView):
    @blp.arguments(s.CountriesQuery, location="query")
    @blp.response(200, s.CountryOut(many=True), example=ex.COUNTRIES,
                  description="Every country, with its name in `locale`.")
    def get(self, query):
        """List the countries.

        Every country an address can be written for, with its name in `locale`, sorted by name.
        """
        return [{"code": code, "name": name} for code, name in countries(query.get("locale") or "en")]


@blp.route("/address-formats/<string:country>")
class AddressFormat(MethodView):
    @blp.arguments(s.AddressFormatQuery, location="query")
    @blp.response(200, s.AddressFormatOut, example=ex.ADDRESS_FORMAT, description="The country's address form.")
    def get(self, query, country):
        """Read a country's address form.

        Its fields in the order its people write them, what each is called, which are required,
        the regions to choose from (with `region`, that region's cities where the data lists
        them) and an example postal code.

        :raise 404: No such country: use an ISO 3166-1 alpha-2 code, like DE.
        """
        form = address_form(country, region=query.get("region"), locale=query.get("locale") or "en")
        if form is None:
            raise NotFound(f"no country {country.upper()!r}: use an ISO 3166-1 alpha-2 code, like DE")
        return dataclasses.asdict(form)
