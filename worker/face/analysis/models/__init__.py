"""MediaPipe's Apache-2.0 face models and mesh data, vendored from the 0.10.14 wheel."""
