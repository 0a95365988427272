"""Placement plugins, one module each, registered in the ``mover.placement`` entry-point group."""
