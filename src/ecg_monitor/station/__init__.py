"""Central station: one window watching every patient a fleet worker serves (issue #12, item 5)."""
