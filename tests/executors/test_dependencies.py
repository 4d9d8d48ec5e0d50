"""CallDependencies: what waits for what, and cached outputs are never waited for."""

from __future__ import annotations

from merkl import CachePolicy, task
from merkl.executors.base import ValueMap
from merkl.executors.dependencies import CallDependencies
from merkl.graph import make_plan


@task
def source(x):
    return x


@task(outs=2)
def fork(x):
    return x, x


@task
def join(*parts):
    return parts


def test_diamond_releases_the_join_after_both_branches(repo):
    a = source(1)
    left, right = fork(a)
    top = join(source(left), source(right), a)
    plan = make_plan([top], repo.cache)
    deps = CallDependencies(plan)
    assert deps.initial() == [a.call]
    assert deps.finish(a.call) == [left.call]  # both outputs come from one call
    branches = deps.finish(left.call)
    assert len(branches) == 2
    assert deps.finish(branches[0]) == []
    assert deps.finish(branches[1]) == [top.call]
    assert deps.producers[top.call] == [*branches, a.call]


def test_cached_outputs_are_not_waited_for(repo):
    a = source(2)
    a.get()
    b = source(3)
    top = join(a, b)
    plan = make_plan([top], repo.cache)
    deps = CallDependencies(plan)
    assert a in plan.cached
    assert deps.initial() == [b.call]
    assert deps.producers[top.call] == [b.call]
    assert deps.finish(b.call) == [top.call]


def test_independent_calls_are_all_ready_at_once(repo):
    tops = [source(i) for i in range(5)]
    plan = make_plan(tops, repo.cache)
    assert CallDependencies(plan).initial() == [t.call for t in tops]


@task(outs=2, cache_policy={0: CachePolicy.EVERYWHERE, 1: CachePolicy.NEVER})
def half_cached(x):
    return x, x


def test_a_cached_sibling_is_loaded_while_the_call_reruns_for_the_other(repo):
    kept, again = half_cached(4)
    kept.get()
    first, second = join(kept), join(again)
    plan = make_plan([first, second], repo.cache)
    deps = CallDependencies(plan)
    assert kept in plan.cached
    assert deps.producers[first.call] == []
    assert deps.producers[second.call] == [kept.call]


def test_calls_with_the_same_hash_run_once_and_give_all_their_twins(repo):
    first, second = source(5), source(5)
    top = join(first, second)
    plan = make_plan([top, first, second], repo.cache)
    assert len(plan.calls) == 3  # the planner keeps both call objects
    deps = CallDependencies(plan)
    assert deps.calls == [first.call, top.call]
    assert deps.twins(first.call) == [first.call, second.call]
    assert deps.producers[top.call] == [first.call]
    values = ValueMap(lambda node: None)
    deps.set_values(values, first.call, [5])
    assert values == {first: 5, second: 5}
