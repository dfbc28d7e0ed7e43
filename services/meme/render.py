"""PNG memes: the caption in the classic white-with-black-outline style.

The background is a gradient whose colours come from a hash of the caption, so the
same meme always looks the same. Each caption block is wrapped and shrunk until it
fits its share of the canvas; the boxes actually drawn are returned so the fit can be
checked rather than trusted. CPU-bound (milliseconds): call it off the event loop.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
MIN_FONT_SIZE = 8
ELLIPSIS = "…"

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont | ImageFont.TransposedFont


@dataclass(frozen=True, slots=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True, slots=True)
class RenderedMeme:
    png: bytes
    text_boxes: tuple[Box, ...]


@lru_cache(maxsize=256)
def _font(size: int) -> Font:
    if FONT_PATH.exists():
        return ImageFont.truetype(str(FONT_PATH), size)
    return ImageFont.load_default(size=size)


def _stroke(size: int) -> int:
    return max(1, size // 12)


def _line_height(size: int) -> int:
    return round(size * 1.2) + 2 * _stroke(size)


def _width(text: str, size: int) -> float:
    return _font(size).getlength(text) + 2 * _stroke(size)


def _split_word(word: str, size: int, max_width: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for char in word:
        if current and _width(current + char, size) > max_width:
            pieces.append(current)
            current = char
        else:
            current += char
    return [*pieces, current] if current else pieces


def _wrap(text: str, size: int, max_width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if _width(candidate, size) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        pieces = _split_word(word, size, max_width)
        lines.extend(pieces[:-1])
        current = pieces[-1] if pieces else ""
    return [*lines, current] if current else lines


def _fit(text: str, max_width: int, max_height: int, max_size: int) -> tuple[int, list[str]]:
    """The largest font size whose wrapped lines fit; at the floor, cut with an ellipsis."""
    size = max(max_size, MIN_FONT_SIZE)
    while True:
        lines = _wrap(text, size, max_width)
        if len(lines) * _line_height(size) <= max_height or size == MIN_FONT_SIZE:
            break
        size = max(MIN_FONT_SIZE, int(size * 0.9))
    room = max(1, max_height // _line_height(size))
    if len(lines) > room:
        lines = lines[:room]
        last = lines[-1]
        while last and _width(last + ELLIPSIS, size) > max_width:
            last = last[:-1]
        lines[-1] = last.rstrip() + ELLIPSIS
    return size, lines


def _background(text: str, width: int, height: int) -> Image.Image:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    dark = (digest[0] * 6 // 10, digest[1] * 6 // 10, digest[2] * 6 // 10)
    light = (digest[3], digest[4], digest[5])
    gradient = Image.linear_gradient("L")
    if digest[6] & 1:
        gradient = gradient.transpose(Image.Transpose.ROTATE_90)
    return ImageOps.colorize(gradient.resize((width, height)), dark, light)


def _draw_block(
    draw: ImageDraw.ImageDraw, lines: list[str], size: int, x: float, top: int
) -> list[Box]:
    font = _font(size)
    stroke = _stroke(size)
    boxes: list[Box] = []
    for i, line in enumerate(lines):
        y = top + i * _line_height(size) + stroke
        draw.text(
            (x, y),
            line,
            font=font,
            fill="white",
            stroke_width=stroke,
            stroke_fill="black",
            anchor="ma",
        )
        left, upper, right, lower = draw.textbbox(
            (x, y), line, font=font, stroke_width=stroke, anchor="ma"
        )
        boxes.append(Box(int(left), int(upper), int(right), int(lower)))
    return boxes


def render_png(text: str, footer: str | None, width: int, height: int) -> RenderedMeme:
    """Top caption = first line of `text`, bottom caption = the rest; footer bottom-right."""
    image = _background(text, width, height)
    draw = ImageDraw.Draw(image)
    margin = max(4, min(width, height) // 40)
    footer_size = max(MIN_FONT_SIZE, height // 32)
    footer_height = _line_height(footer_size) if footer else 0
    inner_width = width - 2 * margin
    inner_height = height - 2 * margin - footer_height
    blocks = [part for part in text.split("\n", 1) if part.strip()]
    share = inner_height // max(1, len(blocks)) - (margin if len(blocks) > 1 else 0)
    boxes: list[Box] = []
    for index, block in enumerate(blocks):
        size, lines = _fit(block, inner_width, max(1, share), height // 8)
        block_height = len(lines) * _line_height(size)
        top = margin if index == 0 else margin + inner_height - block_height
        boxes += _draw_block(draw, lines, size, width / 2, top)
    if footer:
        _, lines = _fit(footer, inner_width, footer_height, footer_size)
        footer_top = height - margin - footer_height
        boxes += _draw_block(draw, lines[:1], footer_size, width / 2, footer_top)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=3)
    return RenderedMeme(buffer.getvalue(), tuple(boxes))
