"""The composition root: the ``protoface`` command, the one module that knows every role."""
