"""Tests of obslib.sources."""
