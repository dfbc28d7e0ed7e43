"""What the meme service's handlers need, built by its bootstrap and handed in."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.meme.memes import MemeMaker
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class MemeService:
    settings: Settings
    memes: MemeMaker


DEPS = web.AppKey("deps", MemeService)
