"""Tests of the client transport against a real TLS server on loopback."""
