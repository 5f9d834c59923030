"""Usage and credits (``/v1/usage``)."""
