"""merkl.client.Client against a real uvicorn on loopback."""

from __future__ import annotations

import socket

import pytest

from merkl.client import Client, ServerError
from tests.serve.conftest import SECRET, fill_cache, read_calls


def test_run_and_dry_run(server_url, pipeline_repo):
    with Client(server_url) as client:
        assert client.health()["status"] == "ok"
        before = client.dry_run("servepipe.pipeline", 3)
        assert [o["cached"] for o in before] == [False, False]
        assert client.run("servepipe.pipeline", 3, y=0.5) == 9.5
        response = client.run_response("servepipe.pipeline", [3])
        assert response["result"] == 11.0
        assert response["hashes"] == [before[-1]["hash"]]
    assert read_calls(pipeline_repo).count("square") == 1


def test_a_target_keyword_can_reach_the_pipeline(server_url):
    with Client(server_url) as client:
        assert client.run("servepipe.typed", name="n", flag=True) == ["n", ".", True, 1.0]


def test_dry_run_local_matches_the_server(server_url, client_repo):
    fill_cache(client_repo, "servepipe.pipeline", 5)
    with Client(server_url, repo=client_repo) as client:
        remote = client.dry_run("servepipe.pipeline", 5)
        local = client.dry_run_local("servepipe.pipeline", 5)
    assert [o["hash"] for o in local] == [o["hash"] for o in remote]
    assert [o["cached"] for o in local] == [True, True]
    assert [o["cached"] for o in remote] == [False, False]


def test_a_client_with_the_secret_sends_its_cached_values(server_url, client_repo, pipeline_repo):
    assert fill_cache(client_repo, "servepipe.pipeline", 6) == 38.0
    assert read_calls(pipeline_repo) == ["square", "add"]  # the client's own computation
    with Client(server_url, SECRET, repo=client_repo) as client:
        cache = client.collect_cache("servepipe.pipeline", [6], {})
        response = client.run_response("servepipe.pipeline", [6])
    assert list(cache.values()) == [38.0]  # only the root: nothing below it is needed
    assert response["result"] == 38.0
    assert response["stats"] == {"ran": 0, "loaded": 1, "client_values": 1}
    assert read_calls(pipeline_repo) == ["square", "add"]  # the server ran no body
    assert pipeline_repo.index.find_output(response["hashes"][0]) is not None


def test_only_what_the_server_lacks_is_sent(server_url, client_repo, pipeline_repo):
    fill_cache(client_repo, "servepipe.two", 2)  # square(2) and add(2, 1)
    with Client(server_url, SECRET, repo=client_repo) as client:
        client.run("servepipe.square", 2)  # now the server has square(2)
        cache = client.collect_cache("servepipe.two", [2], {})
        assert list(cache.values()) == [3]
        assert client.run("servepipe.two", 2) == [4, 3]
        assert client.collect_cache("servepipe.two", [2], {}) == {}


def test_without_the_secret_nothing_is_sent(server_url, client_repo, pipeline_repo):
    fill_cache(client_repo, "servepipe.pipeline", 7)
    with Client(server_url, repo=client_repo) as client:
        response = client.run_response("servepipe.pipeline", [7])
    assert response["stats"]["client_values"] == 0
    assert response["stats"]["ran"] == 2


def test_with_a_wrong_secret_the_server_refuses(server_url, client_repo):
    fill_cache(client_repo, "servepipe.pipeline", 8)
    client = Client(server_url, "not-the-secret", repo=client_repo)
    with client, pytest.raises(ServerError) as caught:
        client.run("servepipe.pipeline", 8)
    assert caught.value.status == 403


def test_send_cache_needs_a_secret():
    with pytest.raises(Exception, match="needs the server's `secret`"):
        Client("http://127.0.0.1:1", send_cache=True)


def test_server_errors_become_server_error(server_url):
    with Client(server_url) as client:
        with pytest.raises(ServerError) as failed:
            client.run("servepipe.failing", 1)
        assert failed.value.status == 500
        assert failed.value.task == "servepipe.fail"
        assert "ValueError" in str(failed.value)
        with pytest.raises(ServerError) as unknown:
            client.run("servepipe.nothing")
        assert unknown.value.status == 404
        with pytest.raises(ServerError) as bad:
            client.run("servepipe.pipeline", "x")
        assert bad.value.status == 422
        assert "argument 'x' expects int" in bad.value.error


def test_an_unreachable_server_is_a_server_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", timeout=5)
    with client, pytest.raises(ServerError, match="cannot reach the merkl server") as caught:
        client.health()
    assert caught.value.status is None
