"""The meme service: places from coordinates, text and AI memes, PNG images."""
