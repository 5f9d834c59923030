"""The face: analysis of the portrait, speech features, lip-sync and motion."""
