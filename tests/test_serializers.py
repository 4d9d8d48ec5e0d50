"""Serializers round-trip their values; bad values give clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from merkl import BytesSerializer, JsonSerializer, NumpySerializer, PickleSerializer, task
from merkl.errors import SerializationError
from merkl.serializers import get_serializer


@pytest.mark.parametrize(
    ("serializer", "value"),
    [
        (JsonSerializer(), {"a": [1, 2.5, None, "x"]}),
        (BytesSerializer(), b"\x00\xff"),
        (PickleSerializer(), {1, 2, 3}),
    ],
    ids=["json", "bytes", "pickle"],
)
def test_round_trip(serializer, value):
    assert serializer.load(serializer.dump(value)) == value


def test_numpy_round_trip_without_pickle():
    array = np.arange(12, dtype="float32").reshape(3, 4)
    serializer = NumpySerializer()
    assert np.array_equal(serializer.load(serializer.dump(array)), array)
    with pytest.raises(SerializationError, match=r"\.npy"):
        serializer.dump(np.array([object()], dtype=object))


def test_json_error_suggests_another_serializer():
    with pytest.raises(SerializationError, match="PickleSerializer"):
        JsonSerializer().dump({"model": object()})


def test_bytes_serializer_refuses_other_types():
    with pytest.raises(SerializationError, match="expects bytes"):
        BytesSerializer().dump("text")


def test_unknown_serializer_name():
    with pytest.raises(SerializationError, match="unknown serializer 'nope'"):
        get_serializer("nope")


def test_numpy_task_output(repo):
    @task(serializers={0: NumpySerializer()})
    def ones(n):
        return np.ones(n)

    assert np.array_equal(ones(3).get(), np.ones(3))
    assert np.array_equal(ones(3).get(), np.ones(3))


def test_json_unserializable_output_names_task(repo):
    @task
    def make_model():
        return [1, {"model": object()}]

    with pytest.raises(SerializationError) as info:
        make_model().get()
    message = str(info.value)
    assert message.startswith("task tests.test_serializers.")
    assert ".make_model output 0: cannot store " in message
    assert "value[1]['model'] (builtins.object)" in message
    assert "@task(serializers={0: PickleSerializer()})" in message
    assert "\n" not in message


@pytest.mark.parametrize("value", [2**70, -(2**64), [1, 10**30, "1234567890123456789012"]])
def test_json_keeps_big_integers_exact(value):
    serializer = JsonSerializer()
    assert serializer.load(serializer.dump(value)) == value
