"""A fake Nominatim and Google Geocoding API on loopback, counting calls.

Both answer one configured place, located at the asked point, in each provider's own
wire format; `down = True` makes every answer a 500, and `raw_answer` replaces every
answer with those bytes (a broken or hostile provider).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.server import LoopbackServer


class FakeGeocoder(LoopbackServer):
    def __init__(
        self, name: str = "Fakeville", state: str = "Fake State", country_code: str = "fr"
    ) -> None:
        super().__init__()
        self.name = name
        self.state = state
        self.country_code = country_code
        self.down = False
        self.raw_answer: bytes | None = None
        self.calls = 0
        self.last_params: dict[str, str] = {}

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/reverse", self._nominatim)
        app.router.add_get("/maps/api/geocode/json", self._google)
        return app

    def _count(self, request: web.Request) -> web.Response | None:
        self.calls += 1
        self.last_params = dict(request.query)
        if self.down:
            return web.json_response({"error": "fake outage"}, status=500)
        if self.raw_answer is not None:
            return web.Response(body=self.raw_answer, content_type="application/json")
        return None

    async def _nominatim(self, request: web.Request) -> web.Response:
        if failure := self._count(request):
            return failure
        lat, lon = request.query["lat"], request.query["lon"]
        body: dict[str, Any] = {
            "place_id": 1,
            "lat": lat,
            "lon": lon,
            "category": "boundary",
            "type": "administrative",
            "name": self.name,
            "display_name": f"{self.name}, {self.state}",
            "address": {
                "city": self.name,
                "state": self.state,
                "country_code": self.country_code,
            },
        }
        return web.json_response(body)

    async def _google(self, request: web.Request) -> web.Response:
        if failure := self._count(request):
            return failure
        if not request.query.get("key"):
            return web.json_response({"status": "REQUEST_DENIED", "results": []})
        lat, lon = (float(v) for v in request.query["latlng"].split(","))
        result = {
            "types": ["locality", "political"],
            "formatted_address": f"{self.name}, {self.state}",
            "address_components": [
                {"long_name": self.name, "short_name": self.name, "types": ["locality"]},
                {
                    "long_name": self.state,
                    "short_name": self.state,
                    "types": ["administrative_area_level_1", "political"],
                },
                {
                    "long_name": self.country_code.upper(),
                    "short_name": self.country_code.upper(),
                    "types": ["country", "political"],
                },
            ],
            "geometry": {"location": {"lat": lat, "lng": lon}},
        }
        return web.json_response({"status": "OK", "results": [result]})
