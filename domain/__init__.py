"""The pure core of Protoface: ids, events, and one Decider per aggregate.

Nothing in this package performs I/O or reads the clock: time arrives with each
command as ``now``, so replaying the log always folds to the same state.

Every value here is a frozen msgspec Struct declared ``gc=False``: immutable trees of
strings, numbers, datetimes and other such values cannot form a reference cycle, so
the cyclic garbage collector has nothing to find in them. Tracked, the read models'
sessions were rescanned by every full collection, which grew longer as sessions
accumulated (figures: docs/performance.md), and every decoded event counted towards
the next young collection.
"""
