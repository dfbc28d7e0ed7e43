"""Text memes: a library of classic formats filled with the query and the place.

Templates are compiled once at import into literal/slot parts, so filling one is a
join, and a user's `{`, `%` or quote is only ever data. A line break separates the
top and bottom captions. The format is picked by a stable hash of (query, place,
request id): the same request always gets the same meme, different requests vary.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass

from shared.contract import MAX_QUERY_CHARS

NO_PLACE = "the internet"
NO_PLACE_IN = "online"

# Line breaks, tabs and other C0/C1 controls become spaces; bidi overrides (which can
# flip the rest of a caption) and lone surrogates (which cannot be encoded) go away.
_CLEAN = str.maketrans(
    {
        **{c: " " for c in [*range(0x20), *range(0x7F, 0xA0)]},
        **dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)]),
        **dict.fromkeys(range(0xD800, 0xE000)),
    }
)

_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("x_everywhere", "{q}\n{q} everywhere {in_p}"),
    ("one_does_not_simply", "One does not simply\n{q} {in_p}"),
    ("nobody_me", "Nobody:\nMe {in_p}: {q}"),
    ("expectation_reality", "Expectation: {q} {in_p}\nReality: {q}, but worse"),
    ("drake", "Drake, no: {q} anywhere else\nDrake, yes: {q} {in_p}"),
    (
        "distracted_boyfriend",
        "Me, committed to my plans {in_p}\nturning around the moment I see {q}",
    ),
    ("change_my_mind", "{q} is the best thing about {p}\nChange my mind"),
    ("galaxy_brain", "Small brain: ignoring {q}\nGalaxy brain: {q} {in_p} at 3 a.m."),
    ("this_is_fine", "{q} {in_p}\nThis is fine."),
    ("is_this_a_pigeon", "Me {in_p}, looking at {q}\nIs this a personality?"),
    ("two_buttons", "Button 1: {q}\nButton 2: also {q}, but {in_p}"),
    ("brace_yourselves", "Brace yourselves\n{q} is coming to {p}"),
    ("y_u_no", "{q}\nY U NO happen {in_p}?"),
    (
        "ancient_aliens",
        "Nobody can explain what happened {in_p}\nI'm not saying it was {q}, but it was {q}",
    ),
    ("what_if_i_told_you", "What if I told you\n{q} {in_p} is optional"),
    ("success_kid", "Went looking for {q} {in_p}\nFound it"),
    ("bad_luck_brian", "Finally tries {q} {in_p}\nIt was yesterday"),
    ("first_world_problems", "My {q} {in_p} is not perfect\n#firstworldproblems"),
    ("not_sure_if", "Not sure if {q}\nor just {p} being {p}"),
    ("shut_up_and_take_my_money", "{q} {in_p}?\nShut up and take my money"),
    ("condescending_wonka", "Oh, you tried {q} {in_p}?\nTell me more about how unique you are"),
    ("most_interesting_man", "I don't always think about {q}\nbut when I do, it's {in_p}"),
    ("roll_safe", "Can't worry about {q}\nif you never leave {p}"),
    ("surprised_pikachu", "Me {in_p}: ignores {q} for a week\n{q}: gets worse. Me: shocked"),
    ("hide_the_pain", "When someone {in_p} asks how {q} is going\n*smiles through the pain*"),
    (
        "woman_yelling_at_cat",
        "Woman: {q} is ruining {p}!\nCat: {q} is the only good thing about {p}",
    ),
    ("always_has_been", "Wait, {p} is all {q}?\nAlways has been"),
    ("stonks", "{q} {in_p}\nSTONKS"),
    ("trade_offer", "Trade offer\nI receive: {q}. You receive: {p}"),
    ("uno_reverse", "Me: no more {q}\n{p}: *plays an uno reverse card*"),
    ("gru_plan", "Step 1: go to {p}\nStep 2: {q}. Step 3: realise step 2 was the whole plan"),
    ("panik_kalm", "Panik: {q} {in_p}\nKalm: it's just {q}"),
    ("left_exit", "Straight ahead: a normal day {in_p}\nMe, swerving across three lanes: {q}"),
    ("mocking_spongebob", "Someone {in_p}: {q} is overrated\nMe: {qm}"),
    ("they_dont_know", "They don't know I'm thinking about {q}\nat a party {in_p}"),
    ("sleeping_shaq", "Me ignoring everything {in_p}\nMe wide awake at 3 a.m. for {q}"),
    ("buff_doge_vs_cheems", "{q} back in the day: legend\n{q} {in_p} today: cheems"),
    ("tuxedo_pooh", "Pooh: {q}\nTuxedo Pooh: {q}, as practised {in_p}"),
    ("epic_handshake", "{p} and {q}\nEpic handshake"),
    ("spiderman_pointing", "{q} {in_p}\npointing at {q} everywhere else"),
    ("disaster_girl", "{q} {in_p}\n*smiles while it all burns*"),
    ("anakin_padme", "I'm going to try {q} {in_p}\nFor the better, right?"),
    ("bernie_asking", "I am once again asking\nfor {q} {in_p}"),
    ("grumpy_cat", "{q} {in_p}?\nNo."),
    ("overly_attached", "I saw you looking at {q}\nso I followed you to {p}"),
    ("skeptical_kid", "You're telling me there's {q} {in_p}\nand nobody told me?"),
    ("yo_dawg", "Yo dawg, I heard you like {q}\nso we put {q} {in_p}"),
    ("leonardo_cheers", "To everyone {in_p} who still believes in {q}\n*raises glass*"),
    ("clown_makeup", "Me: {q} will be easy\nMe {in_p}, applying clown makeup"),
    ("batman_slap", "Robin: but what about {q}\nBatman: not {in_p}!"),
)

_SLOT = re.compile(r"\{(\w+)\}")
_SLOT_NAMES = frozenset({"q", "qm", "p", "in_p"})


@dataclass(frozen=True, slots=True)
class Format:
    """A template split into parts: literals at even indexes, slot names at odd ones."""

    name: str
    parts: tuple[str, ...]
    mocks: bool

    def fill(self, slots: dict[str, str]) -> str:
        parts = list(self.parts)
        for i in range(1, len(parts), 2):
            parts[i] = slots[parts[i]]
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class TextMeme:
    text: str
    format: str


def _compile(name: str, template: str) -> Format:
    parts = tuple(_SLOT.split(template))
    slots = set(parts[1::2])
    leftover = "".join(parts[::2])
    if not slots <= _SLOT_NAMES or "{" in leftover or "}" in leftover:
        raise ValueError(f"format {name!r} has an unknown or broken slot")
    if not slots & {"q", "qm"} or not slots & {"p", "in_p"}:
        raise ValueError(f"format {name!r} must use both the query and the place")
    return Format(sys.intern(name), parts, "qm" in slots)


FORMATS: tuple[Format, ...] = tuple(_compile(name, template) for name, template in _TEMPLATES)


def clean_text(raw: str, max_chars: int) -> str:
    """One line of printable text, at most max_chars long."""
    text = " ".join(raw.translate(_CLEAN).split())
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


def clean_query(raw: str) -> str:
    return clean_text(raw, MAX_QUERY_CHARS)


def choose_format(query: str, place: str | None, request_id: str) -> Format:
    key = f"{query}\x1f{place or ''}\x1f{request_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return FORMATS[int.from_bytes(digest, "big") % len(FORMATS)]


def _mock(text: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


def text_meme(query: str, place: str | None, request_id: str) -> TextMeme:
    """A meme about an already cleaned query at a place name (None: no location)."""
    fmt = choose_format(query, place, request_id)
    slots = {
        "q": query,
        "p": place or NO_PLACE,
        "in_p": f"in {place}" if place else NO_PLACE_IN,
    }
    if fmt.mocks:
        slots["qm"] = _mock(query)
    return TextMeme(fmt.fill(slots), fmt.name)
