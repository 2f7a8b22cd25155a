"""``prepare``: raw corpora -> training-ready datasets (Piper folder, HF parquet, NeMo manifests)."""

from voxmill.corpus.sources import Source, parse_source
from voxmill.prepare.run import PrepareOptions, PrepareResult, run

__all__ = ["PrepareOptions", "PrepareResult", "Source", "parse_source", "run"]
