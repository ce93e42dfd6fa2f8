"""Putting something on the board: one way to make a listing, for orders and
personal requests alike, so that neither can forget to keep the exact point
apart."""

from __future__ import annotations

from broker.board.models import Listing
from broker.geo.distance import approximate_point


def new_listing(*, lat: float, lon: float, **fields) -> Listing:
    """A listing for a ship-to point at (lat, lon): placed at the centre of the
    point's cell, with the point itself kept for settlement's ranking only."""
    cell_lat, cell_lon = approximate_point(lat, lon)
    return Listing(lat=cell_lat, lon=cell_lon, exact_lat=lat, exact_lon=lon, **fields)
