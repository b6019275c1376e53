"""The separation benchmark: the five methods on held-out corpus chunks, against the codec
ceiling and the trivial baseline (`latsep bench`)."""

from latsep.bench.aggregate import aggregate, summary
from latsep.bench.cases import Case, plan_cases
from latsep.bench.config import METHOD_DEFAULTS, SOURCE_SETS, BenchConfig, Overrides
from latsep.bench.report import markdown_report, markdown_table
from latsep.bench.runner import run_bench

__all__ = [
    "METHOD_DEFAULTS",
    "SOURCE_SETS",
    "BenchConfig",
    "Case",
    "Overrides",
    "aggregate",
    "markdown_report",
    "markdown_table",
    "plan_cases",
    "run_bench",
    "summary",
]
