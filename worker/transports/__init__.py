"""Transports: LiveKit rooms and the Pipecat relay behind one port (``port.Transport``)."""
