"""Autoscale strategies, registered in the ``mover.autoscale`` entry-point group."""
