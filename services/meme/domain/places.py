"""Places: what the service calls a pair of coordinates, and how far away that is.

Every geocoder answers with a `Match` (a gazetteer entry); `Match.place` turns it into
the `Place` a meme talks about, measured from the caller's point.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

EARTH_RADIUS_KM = 6371.0088
# GeoNames lists every town of 1,000 people; this far from all of them is almost
# always sea (or ice, or deep desert), so "near <town>" would be a lie.
OPEN_WATER_KM = 200.0

_GEOHASH_ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    admin1: str
    country: str
    lat: float
    lon: float
    distance_km: float
    source: str

    def to_json(self) -> dict[str, Any]:
        # Field by field: `asdict` deep-copies, a twentieth of the meme service's CPU.
        return {
            "name": self.name,
            "admin1": self.admin1,
            "country": self.country,
            "lat": self.lat,
            "lon": self.lon,
            "distance_km": self.distance_km,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Match:
    """A named place as a gazetteer knows it, independent of who asked."""

    name: str
    admin1: str
    country: str
    lat: float
    lon: float

    def place(self, lat: float, lon: float, source: str) -> Place:
        """The match as seen from (lat, lon), renamed when it is only the nearest shore."""
        distance = round(haversine_km(lat, lon, self.lat, self.lon), 1)
        name = self.name if distance <= OPEN_WATER_KM else f"the open ocean near {self.name}"
        return Place(name, self.admin1, self.country, self.lat, self.lon, distance, source)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Match:
        return cls(
            str(data["name"]),
            str(data["admin1"]),
            str(data["country"]),
            float(data["lat"]),
            float(data["lon"]),
        )


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def geohash(lat: float, lon: float, precision: int) -> str:
    """Standard geohash, so nearby points share a cache key (no maintained lib installed)."""
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    chars: list[str] = []
    bits = 0
    bit_count = 0
    even = True
    while len(chars) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            bits = bits * 2 + (lon >= mid)
            lon_lo, lon_hi = (mid, lon_hi) if lon >= mid else (lon_lo, mid)
        else:
            mid = (lat_lo + lat_hi) / 2
            bits = bits * 2 + (lat >= mid)
            lat_lo, lat_hi = (mid, lat_hi) if lat >= mid else (lat_lo, mid)
        even = not even
        bit_count += 1
        if bit_count == 5:
            chars.append(_GEOHASH_ALPHABET[bits])
            bits = bit_count = 0
    return "".join(chars)
