"""``prepare``: raw corpora -> training-ready datasets (Piper folder, HF parquet, NeMo manifests)."""

from voxmill.prepare.run import PrepareOptions, PrepareResult, run
from voxmill.prepare.sources import Source, parse_source

__all__ = ["PrepareOptions", "PrepareResult", "Source", "parse_source", "run"]
