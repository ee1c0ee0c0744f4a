"""This machine's speed at each stage of a backup (``opsbackup benchmark``)."""

from opsbackup.bench.throughput import StageResult, UnwrapResult, make_sample, measure_stages, measure_unwrap

__all__ = ["StageResult", "UnwrapResult", "make_sample", "measure_stages", "measure_unwrap"]
