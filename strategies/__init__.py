"""Pluggable policies: ``motion`` (how bytes move) and ``autoscale`` (how many movers)."""
