"""Rendering: the per-avatar rig, the torch kernel and renderer, the batcher, the mock."""
