"""``prepare``: raw corpora -> training-ready datasets (Piper folder, HF parquet, NeMo manifests).

``voxmill.prepare.run(PrepareOptions) -> PrepareResult`` is the feature; ``voxmill prepare`` only
builds the options.
"""

from voxmill.corpus.sources import Source, parse_source
from voxmill.engine.report import ReasonGroup
from voxmill.prepare.run import PrepareOptions, PrepareResult, run
from voxmill.prepare.stats import PrepareStats
from voxmill.prepare.steps import ClipOptions

__all__ = [
    "ClipOptions",
    "PrepareOptions",
    "PrepareResult",
    "PrepareStats",
    "ReasonGroup",
    "Source",
    "parse_source",
    "run",
]
