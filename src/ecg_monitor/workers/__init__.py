"""Worker processes that host many feeds (patients) from one receive loop."""
