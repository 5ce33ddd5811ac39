"""Events: the log's domain types, the writer and the query service."""
