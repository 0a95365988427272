"""Job stores: SQLite for the embedded default; Redis for the fleet."""
