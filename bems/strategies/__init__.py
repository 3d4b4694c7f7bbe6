"""Strategies: pure functions from (site, snapshot, forecast, schedule, now) to intended writes."""
