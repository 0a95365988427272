"""Motion strategies, one module each, registered in the ``mover.motion`` entry-point group."""
