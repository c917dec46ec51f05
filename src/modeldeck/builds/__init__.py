"""Builds: an isolated, cached Python environment per deployed model version."""
