"""In-tree store providers, one module per kind of storage, each registered by entry point."""
