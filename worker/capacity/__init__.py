"""A worker's own capacity: what a session of each tier costs it (``probe``), what it
runs now (``budget``), and whether its frames keep time (``overload``)."""
