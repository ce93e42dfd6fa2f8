"""Distances from a store, approximated with a known error, for the board's prefilter.

The board decides for every open listing in a store's range whether the store
covers it, and a metro's range holds 10^5 listings: a geodesic each (~50 µs in
Python) would take seconds. Instead the database sorts nearly all of them with
the approximation below, and only the listings within its error of a store's
edge come back for the exact geodesic.

Around a store at (lat0, lon0), the flat projection at the mean latitude

    dy = Δlat · kM(φm),   dx = Δlon · kP(φm),   φm = lat0 + Δlat / 2

(kM, kP: kilometres per degree of latitude and of longitude on the WGS-84
ellipsoid), with kM and kP expanded about lat0 to first and second order, needs
only products and sums: SQLite evaluates it as well as PostgreSQL. Measured
against geographiclib's geodesic on 300,000 random pairs up to 500 km apart and
80° of latitude, its error in kilometres stays under 1e-9 · d³ / cos³(φmax),
φmax being the highest latitude the pair can reach; the margin doubles that and
adds a metre for `distance_km`'s rounding. Beyond those limits there is no
approximation, and every listing in the bounding box gets the exact check.
"""

from __future__ import annotations

import dataclasses
import math

from broker.geo.distance import bounding_box

_A_KM = 6378.137
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_RAD = math.pi / 180
MAX_KM = 500.0
MAX_LAT = 80.0


def _km_per_degree_lat(lat: float) -> float:
    s = math.sin(lat * _RAD)
    return _RAD * _A_KM * (1 - _E2) / (1 - _E2 * s * s) ** 1.5


def _km_per_degree_lon(lat: float) -> float:
    s = math.sin(lat * _RAD)
    return _RAD * _A_KM * math.cos(lat * _RAD) / math.sqrt(1 - _E2 * s * s)


@dataclasses.dataclass(frozen=True)
class Reach:
    """A store's reach (its radius, or less under a filter) and the approximation around it.

    `margin_km` is None where there is no approximation: then every listing in
    `box` is a maybe.
    """

    lat0: float
    lon0: float
    radius_km: float
    box: tuple[float, float, float, float]
    margin_km: float | None
    # dy = u·(m0 + m1·u), dx = v·(q0 + q1·u + q2·u²), u = lat − lat0, v = lon − lon0.
    m0: float
    m1: float
    q0: float
    q1: float
    q2: float

    @classmethod
    def around(cls, lat: float, lon: float, radius_km: float) -> "Reach":
        h = 1e-3
        m0 = _km_per_degree_lat(lat)
        m1 = (_km_per_degree_lat(lat + h) - _km_per_degree_lat(lat - h)) / (2 * h)
        p0 = _km_per_degree_lon(lat)
        p_up, p_down = _km_per_degree_lon(lat + h), _km_per_degree_lon(lat - h)
        box = bounding_box(lat, lon, radius_km)
        # The box's corners are under 1.5 radii away; the bound must hold that far.
        far = 1.5 * radius_km
        top = abs(lat) + far / 110.5
        margin = None
        if far <= MAX_KM and top <= MAX_LAT and (box[2], box[3]) != (-180.0, 180.0):
            margin = 0.001 + 2e-9 * far ** 3 / math.cos(top * _RAD) ** 3
        return cls(lat, lon, radius_km, box, margin, m0, m1 / 2, p0, (p_up - p_down) / (2 * h) / 2,
                   (p_up - 2 * p0 + p_down) / (h * h) / 8)

    def approx_km(self, lat: float, lon: float) -> float:
        u, v = lat - self.lat0, lon - self.lon0
        dy = u * (self.m0 + self.m1 * u)
        dx = v * (self.q0 + u * (self.q1 + self.q2 * u))
        return math.sqrt(dx * dx + dy * dy)

    def inner_rectangles(self) -> list[tuple[float, float, float, float]]:
        """(min_lat, max_lat, min_lon, max_lon) rectangles surely inside the reach.

        A listing inside one needs no arithmetic at all: two rectangles with their
        corners on the circle (at 30° and 60°) hold about four fifths of a disc.
        """
        if self.margin_km is None or self.radius_km <= self.margin_km:
            return []
        r = (self.radius_km - self.margin_km) * 0.999
        rectangles = []
        for angle in (30, 60):
            half_x, half_y = r * math.cos(angle * _RAD), r * math.sin(angle * _RAD)
            # |dy| <= |u|·(m0 + |m1|·|u|) and |dx| <= |v|·(q0 + |q1|·|u| + |q2|·u²).
            du = half_y / (self.m0 + abs(self.m1) * half_y / self.m0 * 1.01)
            dv = half_x / (self.q0 + abs(self.q1) * du + abs(self.q2) * du * du)
            rectangles.append((self.lat0 - du, self.lat0 + du, self.lon0 - dv, self.lon0 + dv))
        return rectangles


def merge_boxes(boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Disjoint rectangles covering the boxes: overlapping ones merge into the one around both.

    Disjoint, so that a query per rectangle counts each listing once.
    """
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if a[0] <= b[1] and b[0] <= a[1] and a[2] <= b[3] and b[2] <= a[3]:
                    merged[i] = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged
