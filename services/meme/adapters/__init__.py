"""The outside world of the meme service: geocoders, Redis, the AI endpoint."""
