"""Device connectivity state, projected from the event log (issue 18)."""
