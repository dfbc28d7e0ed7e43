import re

import pytest

from services.meme.domain.formats import (
    FORMATS,
    NO_PLACE,
    NO_PLACE_IN,
    Format,
    clean_query,
    text_meme,
)
from shared.contract import MAX_QUERY_CHARS

QUERIES = [f"topic number {i}" for i in range(40)] + [
    "cats",
    "Monday mornings",
    "the printer",
    "pineapple pizza",
    "quarterly reports",
    "my code compiling",
    "gym membership",
    "rain",
    "coffee",
    "deadlines",
]
PLACES = ["Paris", "Long Island City", "Tokyo", "Sydney", None]
SLOT_MARKER = re.compile(r"\{(q|qm|p|in_p)\}")


def test_at_least_forty_formats_with_unique_names() -> None:
    names = [fmt.name for fmt in FORMATS]
    assert len(names) >= 40
    assert len(set(names)) == len(names)


def test_thousand_memes_over_fifty_queries_use_thirty_formats() -> None:
    assert len(set(QUERIES)) == 50
    used = {text_meme(QUERIES[i % 50], PLACES[i % 5], f"req-{i}").format for i in range(1000)}
    assert len(used) >= 30


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_every_format_fills_query_and_place(fmt: Format) -> None:
    text = fmt.fill({"q": "cats", "qm": "cAtS", "p": "Paris", "in_p": "in Paris"})
    assert "{" not in text
    assert "}" not in text
    assert "cats" in text or "cAtS" in text
    assert "Paris" in text


def test_no_placeholder_left_in_any_meme() -> None:
    for i in range(1000):
        meme = text_meme(QUERIES[i % 50], PLACES[i % 5], f"req-{i}")
        assert "{" not in meme.text, meme
        assert "}" not in meme.text, meme
        assert "None" not in meme.text, meme


def test_same_inputs_same_meme_and_request_ids_vary_it() -> None:
    first = text_meme("cats", "Paris", "req-1")
    assert text_meme("cats", "Paris", "req-1") == first
    assert len({text_meme("cats", "Paris", f"req-{i}").text for i in range(20)}) > 5


def test_place_appears_and_no_place_reads_sensibly() -> None:
    for i in range(200):
        assert "Long Island City" in text_meme("cats", "Long Island City", f"r{i}").text
        text = text_meme("cats", None, f"r{i}").text
        assert NO_PLACE in text or NO_PLACE_IN in text


@pytest.mark.parametrize(
    "query",
    [
        "{q} {p} {in_p} {0} {} {{}}",
        "100% %s %(name)s %d",
        "\"quotes\" and 'apostrophes' and `backticks`",
        "emoji 🐱‍👤 👩‍👩‍👧 🇫🇷",
        "\\n \\x00 backslashes \\",
        "<script>alert(1)</script>",
    ],
)
def test_hostile_queries_stay_data(query: str) -> None:
    cleaned = clean_query(query)
    for i in range(100):
        text = text_meme(cleaned, "Paris", f"r{i}").text
        assert cleaned in text or cleaned.lower() in text.lower()
        assert not SLOT_MARKER.search(text.replace(cleaned, ""))


def test_clean_query_collapses_whitespace_and_controls() -> None:
    assert clean_query("  cats \t\n and\r\ndogs\x00\x1b[31m  ") == "cats and dogs [31m"
    assert clean_query("abc\u202edef\u2066") == "abcdef"
    assert clean_query("👩‍👩‍👧 family") == "👩‍👩‍👧 family"
    assert clean_query("\ud800lone") == "lone"
    assert clean_query(" \n\t ") == ""


def test_clean_query_bounds_length() -> None:
    cleaned = clean_query("word " * 100)
    assert len(cleaned) == MAX_QUERY_CHARS
    assert cleaned.endswith("…")
