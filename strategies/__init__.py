"""Strategies execute plans; they never decide."""
