"""A loopback OpenLineage receiver and a clean OpenLineage configuration for each test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import merkl.lineage

from .validate import check_event


class Receiver:
    """Collects the events POSTed to `/api/v1/lineage`, each checked against the models."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.url = server.url_for("/").rstrip("/")
        self.events: list[dict[str, Any]] = []
        server.expect_request("/api/v1/lineage", method="POST").respond_with_handler(self._receive)

    def _receive(self, request: Request) -> Response:
        event = json.loads(request.get_data())
        self.events.append(event)
        return Response("", status=201)

    def checked(self) -> list[dict[str, Any]]:
        for event in self.events:
            check_event(event)
        return self.events


@pytest.fixture(autouse=True)
def no_openlineage_config(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """No OPENLINEAGE_* variables or ~/.openlineage from the machine running the tests."""
    for key in list(os.environ):
        if key.startswith("OPENLINEAGE"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    merkl.lineage.reset()
    yield
    merkl.lineage.close(2)
    merkl.lineage.reset()


@pytest.fixture
def receiver(httpserver: HTTPServer) -> Receiver:
    return Receiver(httpserver)
