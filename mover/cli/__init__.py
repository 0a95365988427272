"""The ``mover`` command line."""
