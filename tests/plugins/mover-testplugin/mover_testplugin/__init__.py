"""A plugin package outside mover, as a vendor would write one (used by mover's tests)."""
