"""Everything that knows NATS: subjects, headers, stream settings, the embedded server.

``api/``, ``worker/`` and ``projections/`` reach NATS only through this package.
"""
