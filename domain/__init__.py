"""The pure core of Protoface: ids, events, and one Decider per aggregate.

Nothing in this package performs I/O or reads the clock: time arrives with each
command as ``now``, so replaying the log always folds to the same state.
"""
