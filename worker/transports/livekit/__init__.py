"""The LiveKit adapter: a room, the avatar data-stream protocol, tracks."""
