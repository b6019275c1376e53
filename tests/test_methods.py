"""The method rules of latsep/methods.py, which the API, the bundle format, the bench and
the engine all apply."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from latsep.methods import (
    DEFAULT_METHOD,
    METHODS,
    METHODS_BY_CODEC,
    TWO_SOURCE_METHODS,
    option_problem,
)


def test_every_method_is_served_by_exactly_one_codec_kind():
    served = [m for methods in METHODS_BY_CODEC.values() for m in methods]
    assert sorted(served) == sorted(METHODS)
    assert set(TWO_SOURCE_METHODS) < set(METHODS)
    assert DEFAULT_METHOD in METHODS and DEFAULT_METHOD not in TWO_SOURCE_METHODS


@pytest.mark.parametrize("method", METHODS)
def test_the_plain_defaults_are_allowed(method):
    assert (
        option_problem(method, 2, search="sample", temperature=1.0, likelihood_weight=1.0) is None
    )


@pytest.mark.parametrize(
    ("method", "sources", "options", "says"),
    [
        ("demucs", 2, {}, "unknown method 'demucs'"),
        ("lass", 3, {}, "lass separates two sources; got 3"),
        ("hybrid", 2, {"search": "greedy"}, "search must be one of sample, beam"),
        ("mlass-pe", 2, {"search": "beam"}, "search=beam serves lass, lqvae, hybrid; not mlass-pe"),
        ("lqvae", 2, {"search": "beam", "temperature": 0.8}, "temperature must be 1"),
        ("lass", 2, {"likelihood_weight": 0.0}, "finite number > 0"),
        ("lass", 2, {"likelihood_weight": math.inf}, "finite number > 0"),
        ("mlass-bp", 3, {"likelihood_weight": 2.0}, "must be 1 for mlass-bp with 3 sources"),
    ],
)
def test_each_rule_names_what_is_wrong(method, sources, options, says):
    problem = option_problem(method, sources, **options)
    assert problem is not None and says in problem


def test_what_the_rules_allow():
    assert option_problem("lass", 2, search="beam", temperature=1.0) is None
    assert option_problem("mlass-bp", 2, likelihood_weight=2.0) is None  # two sources: lass
    assert option_problem("mlass-pe", 4, likelihood_weight=2.0) is None
    assert option_problem("mlass-bp", 3, likelihood_weight=1.0) is None
    assert option_problem("mlass-pe", 3, temperature=0.7) is None  # tempered sampling


def test_the_rules_import_without_torch():
    code = "import sys, latsep.methods; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
