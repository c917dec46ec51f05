"""Drift, realised and estimated performance: the statistics and the services that compute them."""
