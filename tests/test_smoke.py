from tests.helpers import run_cli, write_module


def test_pipeline1_runs_and_hits_cache(repo):
    write_module(
        repo.root,
        "pipe_a",
        """
        from merkl import task
        @task
        def double(x):
            return 2 * x
        def pipeline(x: int):
            return double(x)
    """,
    )
    first = run_cli("run", "pipe_a.pipeline", "21")
    assert first.code == 0, first.err
    assert first.out.splitlines()[-1] == "42"
    second = run_cli("run", "pipe_a.pipeline", "21")
    assert "0 task(s) run" in second.err
