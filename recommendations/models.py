"""Models of the recommendations app (solutions, campaigns, filters, trackers) come with the engine."""
