"""Workers: claim queued sessions and run them.

The media pipeline is a chain, one module a stage::

    transport (relay | livekit) → audio (speech queue) → features → renderer → pacer → transport
"""
