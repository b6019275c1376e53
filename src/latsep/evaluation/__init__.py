"""The separation benchmark: the five methods on held-out corpus chunks, against the codec
ceiling and the trivial baseline (`latsep bench`)."""

from latsep.evaluation.aggregate import aggregate, summary
from latsep.evaluation.cases import Case, plan_cases
from latsep.evaluation.config import METHOD_DEFAULTS, SOURCE_SETS, BenchConfig, Overrides
from latsep.evaluation.report import markdown_report, markdown_table
from latsep.evaluation.runner import run_bench

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
