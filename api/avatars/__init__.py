"""Avatars: upload, build status, list and delete (``/v1/avatars``)."""
