"""The public HTTP API (Litestar + msgspec): thin controllers over injected services."""
