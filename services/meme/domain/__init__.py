"""Pure meme rules: places, formats and request parsing; no I/O here."""
