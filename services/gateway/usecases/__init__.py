"""What the gateway does for a caller, independent of HTTP: the routes translate."""
