"""Read models derived from the event log.

Each projection folds events in log order and records the last stream sequence
it applied; rebuilding any of them from sequence 1 gives the same model.
"""
