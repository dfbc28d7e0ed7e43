import dataclasses

import pytest

from services.meme.domain.places import OPEN_WATER_KM, Match, geohash, haversine_km


def test_haversine_known_distances() -> None:
    assert haversine_km(48.8566, 2.3522, 48.8566, 2.3522) == 0
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(20015.1, abs=1)


@pytest.mark.parametrize(
    ("lat", "lon", "precision", "expected"),
    [
        (57.64911, 10.40744, 11, "u4pruydqqvj"),
        (48.8566, 2.3522, 5, "u09tv"),
        (-33.8688, 151.2093, 6, "r3gx2f"),
        (0.0, 0.0, 4, "s000"),
    ],
)
def test_geohash_matches_reference_values(
    lat: float, lon: float, precision: int, expected: str
) -> None:
    assert geohash(lat, lon, precision) == expected


def test_near_match_keeps_its_name_and_measures_distance() -> None:
    paris = Match("Paris", "Ile-de-France", "FR", 48.85341, 2.3488)
    place = paris.place(48.8566, 2.3522, "offline")
    assert place.name == "Paris"
    assert place.distance_km == pytest.approx(0.4, abs=0.05)
    assert (place.lat, place.lon, place.source) == (48.85341, 2.3488, "offline")


def test_far_match_is_open_water_but_keeps_the_nearest_place() -> None:
    taiohae = Match("Taiohae", "Iles Marquises", "PF", -8.91093, -140.09972)
    place = taiohae.place(0.0, -140.0, "offline")
    assert place.distance_km > OPEN_WATER_KM
    assert place.name == "the open ocean near Taiohae"
    assert (place.lat, place.lon, place.country) == (-8.91093, -140.09972, "PF")


def test_match_json_round_trip() -> None:
    match = Match("Tokyo", "Tokyo", "JP", 35.6895, 139.69171)
    assert Match.from_json(match.to_json()) == match


def test_a_place_in_json_has_every_field() -> None:
    place = Match("Tokyo", "Tokyo", "JP", 35.6895, 139.69171).place(35.0, 139.0, "offline")
    assert place.to_json() == dataclasses.asdict(place)
