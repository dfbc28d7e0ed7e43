"""What the gateway and the meme service agree on: meme kinds, formats, query bound."""

from __future__ import annotations

from typing import Literal

Kind = Literal["text", "ai"]
ImageFormat = Literal["json", "png"]
KINDS: tuple[Kind, ...] = ("text", "ai")
FORMATS: tuple[ImageFormat, ...] = ("json", "png")
MAX_QUERY_CHARS = 200
