"""What the API promises: meme kinds, formats, the query bound and token amounts."""

from __future__ import annotations

from typing import Literal

Kind = Literal["text", "ai"]
ImageFormat = Literal["json", "png"]
KINDS: tuple[Kind, ...] = ("text", "ai")
FORMATS: tuple[ImageFormat, ...] = ("json", "png")
MAX_QUERY_CHARS = 200

# The largest balance an account may hold: below 2^53, so every balance is an exact
# integer in Redis's Lua (doubles), in JSON numbers and in MongoDB alike.
MAX_BALANCE = 10**15
# The most tokens one account creation or one credit may add.
MAX_TOKENS_PER_CALL = 10**12

# The most memes one call to the meme service's batch route carries, and the body size
# that allows (an item is a query, a place and a request id: well under 4 KiB escaped).
MAX_MEME_BATCH = 32
MAX_MEME_BATCH_BYTES = MAX_MEME_BATCH * 4096
