"""Keyed content-defined chunking (FastCDC over a secret gear table)."""

from opsbackup.chunking.chunker import Chunker, ChunkerParams, gear_table, native_available

__all__ = ["Chunker", "ChunkerParams", "gear_table", "native_available"]
