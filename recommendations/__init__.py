"""Recommendations: solutions, campaigns, filters, event trackers and the engine."""
