"""Tests of the storage backends: one conformance suite (conformance.py) that every backend runs."""
