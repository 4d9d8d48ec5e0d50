"""Every executor hands a downstream task the value a cache hit would give, with or without a
cache: the same serialize/load round trip as in-process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from merkl.evaluation import evaluate_value
from merkl.session import use_session

PIPELINE = """
import numpy as np

@task
def make():
    return (np.arange(3), float("nan"))

@task
def check(pair):
    return [type(pair).__name__, pair[0].dtype.str, pair[1]]
"""


@pytest.mark.parametrize("executor", ["threads", "processes"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_every_executor_hands_on_the_stored_value(pipelines, repo, executor, use_cache):
    module = pipelines.make(PIPELINE)
    with use_session(repo=repo, use_cache=use_cache):
        value = evaluate_value(module.check(module.make()), executor=executor)
    assert value[:2] == ["tuple", np.arange(3).dtype.str]
    assert math.isnan(value[2])
