"""What the cache returns is what the task returned: exactly, or refused at the producing task."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import pathlib

import numpy as np
import pytest

from merkl import JsonSerializer, task
from merkl.errors import SerializationError
from merkl.evaluation import evaluate_value
from merkl.session import use_session
from merkl.typed_json import is_plain
from tests.helpers import run_cli, write_module

EXACT_VALUES = [
    float("nan"),
    math.inf,
    -math.inf,
    {"loss": float("nan"), "best": [1.0, -math.inf]},
    (1, "a", (2.5,)),
    {1: "int key", (2, 3): "tuple key"},
    {3, 1, 2},
    frozenset({"a"}),
    b"\x00\xff",
    bytearray(b"ab"),
    2 + 3j,
    dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 2),
    dt.date(2026, 1, 2),
    dt.time(1, 2, 3),
    dt.timedelta(days=-1, seconds=5, microseconds=7),
    decimal.Decimal("1.10"),
    pathlib.PurePosixPath("data/x.csv"),
    np.float32(1.5),
    np.int64(-3),
    [np.arange(3), "mixed"],
    {"merkl.typed": "a plain dict that looks like an envelope"},
    2**70,
    [2**70, float("nan")],
]


def _same(a, b) -> bool:
    """Equal and of the same types, all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        nan_ok = a.dtype.kind in "fc"
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=nan_ok)
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("value", EXACT_VALUES, ids=repr)
def test_json_gives_back_exactly_what_it_stored(value):
    serializer = JsonSerializer()
    assert _same(serializer.load(serializer.dump(value)), value)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype="<f4").reshape(3, 4),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.array([1.0, np.nan, np.inf]),
        np.array([(1, 2.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
        np.array(["ab", "c"]),
        np.zeros((0, 3), dtype=">i2"),
    ],
    ids=["f4", "fortran", "nan", "structured", "unicode", "empty-big-endian"],
)
def test_numpy_arrays_round_trip_without_pickle(array):
    serializer = JsonSerializer()
    data = serializer.dump(array)
    assert b"pickle" not in data.lower()
    assert _same(serializer.load(data), array)


def test_plain_data_is_written_as_plain_json():
    assert JsonSerializer().dump({"a": [1, 2.5, None, "x", True]}) == (
        b'{"a":[1,2.5,null,"x",true]}'
    )
    assert is_plain([0.5] * 10)
    assert not is_plain([0.5, math.nan])
    assert not is_plain({1: "a"})


class Model:
    pass


@pytest.mark.parametrize(
    ("value", "where", "kind"),
    [
        (Model(), "value", "tests.test_values.Model"),
        ({"m": [Model()]}, "value['m'][0]", "tests.test_values.Model"),
        (np.array([object()]), "value", "numpy.ndarray, dtype object"),
        (np.ma.masked_array([1, 2]), "value", "numpy.ma.MaskedArray"),
    ],
)
def test_values_that_would_change_are_refused(value, where, kind):
    with pytest.raises(SerializationError) as info:
        JsonSerializer().dump(value)
    assert f"cannot store {where} ({kind}) as JSON" in str(info.value)
    assert "PickleSerializer()" in str(info.value)


def test_zoned_datetimes_are_refused_not_turned_into_offsets():
    from zoneinfo import ZoneInfo

    value = dt.datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))
    with pytest.raises(SerializationError, match="time zone"):
        JsonSerializer().dump(value)


@task
def diverged(n):
    return {"loss": float("nan"), "steps": n, "weights": np.full(n, np.inf), "shape": (n,)}


@task
def consume(result):
    # Fails if the array came back as a list or the NaN as None.
    return [result["weights"].mean(), math.isnan(result["loss"]), result["shape"]]


def _pipeline_value(n):
    return evaluate_value(consume(diverged(n)))


def test_cached_uncached_and_cache_hit_give_the_same_values(repo):
    with use_session(repo=repo, use_cache=False):
        uncached = _pipeline_value(3)
    first = _pipeline_value(3)
    again = _pipeline_value(3)
    assert _same(uncached, [np.float64(math.inf), True, (3,)])
    assert _same(first, uncached)
    assert _same(again, uncached)


def test_no_cache_refuses_what_a_cached_run_refuses(repo):
    @task
    def bad():
        return Model()

    for use_cache in (True, False):
        with use_session(repo=repo, use_cache=use_cache), pytest.raises(SerializationError):
            bad().get()


def test_cli_refusal_is_one_line_naming_task_output_type_and_serializer(repo):
    write_module(
        repo.root,
        "refusing",
        """
        from merkl import task

        class Model:
            pass

        @task(outs=2)
        def train(x):
            return x, {"model": Model()}

        def pipeline():
            return train(1)
        """,
    )
    for flags in ([], ["--no-cache"]):
        result = run_cli("run", *flags, "refusing.pipeline")
        assert result.code == 1
        assert result.err == (
            "merkl: error: task refusing.train output 1: cannot store value['model'] "
            "(refusing.Model) as JSON: it would not come back as the same type; return plain "
            "data (dict, list, str, numbers, numpy arrays), or use "
            "@task(serializers={1: PickleSerializer()})\n"
        )
