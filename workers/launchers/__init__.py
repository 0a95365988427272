"""Launchers, registered in the ``mover.launchers`` entry-point group."""
