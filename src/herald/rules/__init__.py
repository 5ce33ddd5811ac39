"""Rules and alerts: windowed conditions over the log, fired and resolved as events."""
