"""`merkl why`: for each output a pipeline would compute, what changed since it last ran.

Each task call with an output that is not cached is compared with the closest earlier run of
the same task in the run log (the fewest differing components; the most recent among equals):
its code hash (and, from the parts recorded with it, which function, class, constant, import,
module or code dependency changed), and each argument's hash by name. A differing argument is
explained by what it is now: an input file (its content changed), an upstream output (it
changed, and why is listed first), or a plain value (shown as it is now; the log keeps only
hashes of old values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

from merkl.cache import CachePolicy
from merkl.cache.index import RunRecord
from merkl.deps import CodeHashMode
from merkl.files import FileRef, StoredOutput
from merkl.graph import iter_nodes
from merkl.placeholder import MissingArgument, Placeholder
from merkl.provenance.history import RunLog, argument_sources
from merkl.provenance.model import display_path, output_label, output_state, short_repr
from merkl.provenance.pipeline import Pipeline, call_pipeline
from merkl.provenance.text import HASH_CHARS, local_time, to_string
from merkl.repo import Repo
from merkl.tasks import Call, iter_lazy

_MAX_CANDIDATES = 500  # earlier runs of one task considered; the log is newest first


@dataclass
class Reason:
    """One changed component. `kind`: code, argument, input-file, upstream, argument-added,
    argument-removed, never-run, evicted, not-cached-by-policy, hash-only, or unknown (the
    hash depends on an argument left out under --fill-missing)."""

    kind: str
    message: str
    argument: str | None = None
    old: str | None = None
    new: str | None = None


@dataclass
class WhyEntry:
    """A task call with outputs to compute, and the reasons."""

    label: str
    out_hashes: list[str]
    compared_with: RunRecord | None
    reasons: list[Reason] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        previous = self.compared_with
        return {
            "task": self.label,
            "outputs": self.out_hashes,
            "compared_with": None
            if previous is None
            else {
                "output": previous.out_hash,
                "time": previous.time,
                "code_hash": previous.code_hash,
            },
            "reasons": [vars(reason) for reason in self.reasons],
        }


def why(
    target: str, args: list[str], *, fill_missing: bool = False, command: str = "merkl why"
) -> list[WhyEntry]:
    """Why each task call of `target(args)` with an uncached output would run; [] if none.

    Calls come dependencies first, so the root cause of a chain is listed before its effects;
    calls whose hash is unknown (under --fill-missing) come last.
    """
    return explain_pipeline(
        call_pipeline(target, args, fill_missing=fill_missing, command=command)
    )


def explain_pipeline(pipeline: Pipeline) -> list[WhyEntry]:
    """`why` for a pipeline already called (the UI builds its DAG from the same call)."""
    log = RunLog(pipeline.repo)
    roots = [*pipeline.roots, *(w.source for w in pipeline.writes)]
    missing: dict[Call, list[Placeholder]] = {}
    unknown: dict[Call, list[Placeholder]] = {}
    for node in iter_nodes(roots):
        if isinstance(node, Placeholder):
            state = output_state(node, pipeline.repo.cache)
            if state != "cached":
                (missing if state == "missing" else unknown).setdefault(node.call, []).append(node)
    explainer = _Explainer(pipeline.repo, log, {p.hash for ps in missing.values() for p in ps})
    entries = [explainer.explain(call, outputs) for call, outputs in missing.items()]
    return entries + [_unknown_entry(call, outputs) for call, outputs in unknown.items()]


def _unknown_entry(call: Call, outputs: list[Placeholder]) -> WhyEntry:
    names = sorted({n.name for n in iter_nodes(outputs) if isinstance(n, MissingArgument)})
    return WhyEntry(
        _call_label(call, outputs),
        [],
        None,
        [
            Reason(
                "unknown",
                f"its hash depends on pipeline argument(s) not given: {', '.join(names)}",
            )
        ],
    )


def _call_label(call: Call, outputs: list[Placeholder]) -> str:
    if len(outputs) == 1:
        return output_label(outputs[0])
    indexes = ",".join(str(p.index) for p in outputs)
    return f"{call.task.module}.{call.task.name}[{indexes}]"


class _Explainer:
    def __init__(self, repo: Repo, log: RunLog, missing_hashes: set[str | None]) -> None:
        self.repo = repo
        self.log = log
        self.missing_hashes = missing_hashes
        self._by_task: dict[
            tuple[str, str, int],
            tuple[dict[str, RunRecord], list[tuple[RunRecord, frozenset[tuple[str, str]]]]],
        ] = {}

    def explain(self, call: Call, outputs: list[Placeholder]) -> WhyEntry:
        task = call.task
        first = outputs[0]
        label = _call_label(call, outputs)
        out_hashes = [p.hash for p in outputs if p.hash is not None]
        policy = task.policy(first.index)
        if policy in (CachePolicy.MEMORY, CachePolicy.NEVER):
            return WhyEntry(
                label,
                out_hashes,
                None,
                [
                    Reason(
                        "not-cached-by-policy",
                        f"cache_policy={policy.name}: this output is never stored between "
                        "processes",
                    )
                ],
            )
        current = call.arg_hashes()
        previous = self._closest_run(call, first.index, current)
        entry = WhyEntry(label, out_hashes, previous)
        if previous is None:
            entry.reasons.append(
                Reason(
                    "never-run",
                    f"no earlier run of {task.module}.{task.name} is in the run log: "
                    f"it has not been computed in this repository",
                )
            )
        elif previous.out_hash == first.hash:
            entry.reasons.append(
                Reason(
                    "evicted",
                    f"it was computed {local_time(previous.time)} but is no longer in the "
                    f"cache (removed by `merkl gc` or lost); nothing changed since",
                )
            )
        else:
            entry.reasons = self._differences(call, previous, current)
        return entry

    def _closest_run(self, call: Call, index: int, current: dict[str, str]) -> RunRecord | None:
        by_args, candidates = self._candidates(call.task.module, call.task.name, index)
        same_args = by_args.get(call.args_hash or "")
        if same_args is not None:
            return same_args  # only the code can differ: no run is closer
        if not candidates:
            return None
        items = frozenset(current.items())
        code_hash = call.task.code_hash
        # Fewest differing arguments, then same code; min() keeps the newest among equals.
        return min(candidates, key=lambda c: (len(items ^ c[1]), c[0].code_hash != code_hash))[0]

    def _candidates(
        self, module: str, task: str, index: int
    ) -> tuple[dict[str, RunRecord], list[tuple[RunRecord, frozenset[tuple[str, str]]]]]:
        """Earlier runs of one task output: the newest per args hash, and the most recent
        ones with their arguments as a set (computed once per task, not once per call)."""
        key = (module, task, index)
        found = self._by_task.get(key)
        if found is None:
            runs = [r for r in self.log.task_runs(module, task) if r.out_index == index]
            by_args: dict[str, RunRecord] = {}
            for run in runs:
                by_args.setdefault(run.args_hash, run)
            recent = [(r, frozenset(r.arg_hashes.items())) for r in runs[:_MAX_CANDIDATES]]
            found = self._by_task[key] = (by_args, recent)
        return found

    def _differences(
        self, call: Call, previous: RunRecord, current: dict[str, str]
    ) -> list[Reason]:
        task = call.task
        reasons: list[Reason] = []
        if previous.code_hash != task.code_hash:
            reasons.append(
                Reason(
                    "code",
                    f"code changed: {self._code_change(call, previous.code_hash)} (code hash "
                    f"{previous.code_hash[:HASH_CHARS]} → {task.code_hash[:HASH_CHARS]})",
                    old=previous.code_hash,
                    new=task.code_hash,
                )
            )
        old_sources = argument_sources(previous)
        for name, arg_hash in current.items():
            old_hash = previous.arg_hashes.get(name)
            if old_hash is None:
                reasons.append(
                    Reason(
                        "argument-added",
                        f"argument {name!r} is new (the signature changed)",
                        argument=name,
                        new=arg_hash,
                    )
                )
            elif old_hash != arg_hash:
                value = call.bound.arguments[name]
                reasons.append(
                    self._changed_argument(name, value, old_sources.get(name), old_hash)
                )
        for name in sorted(set(previous.arg_hashes) - set(current)):
            reasons.append(
                Reason(
                    "argument-removed",
                    f"argument {name!r} was removed (the signature changed)",
                    argument=name,
                )
            )
        if not reasons:
            reasons.append(
                Reason(
                    "hash-only",
                    f"same code and arguments as the run of {local_time(previous.time)}, "
                    f"but another output hash (merkl's hash format or the output index changed)",
                )
            )
        return reasons

    def _code_change(self, call: Call, old_code_hash: str) -> str:
        """Which parts of the task's code changed, from the parts recorded when it last ran."""
        old = self.repo.index.find_code_parts(old_code_hash)
        if old is None:  # a run from before parts were recorded
            return _code_scope(call)
        new = call.task.code.parts
        changes = [
            f"{_part_name(label)} changed"
            for label in new
            if label in old and old[label] != new[label]
        ]
        changes += [f"{_part_name(label)} is new" for label in new if label not in old]
        changes += [f"{_part_name(label)} is gone" for label in old if label not in new]
        return "; ".join(changes) or _code_scope(call)

    def _changed_argument(
        self, name: str, value: Any, old: str | None, old_hash: str | None = None
    ) -> Reason:
        if isinstance(value, FileRef):
            was = f"{old[:HASH_CHARS]} → " if old else ""
            return Reason(
                "input-file",
                f"argument {name!r}: input {'folder' if value.is_dir else 'file'} "
                f"{display_path(self.repo, value.path)!r} "
                f"changed (content {was}{value.hash[:HASH_CHARS]})",
                argument=name,
                old=old,
                new=value.hash,
            )
        if isinstance(value, StoredOutput):
            return Reason(
                "upstream",
                f"argument {name!r}: {display_path(self.repo, value.pointer_file)!r} now "
                f"records another output ({value.hash[:HASH_CHARS]})",
                argument=name,
                old=old,
                new=value.hash,
            )
        if isinstance(value, Placeholder):
            was = f"{old[:HASH_CHARS]} → " if old else ""
            see = "; see above" if value.hash in self.missing_hashes else ""
            return Reason(
                "upstream",
                f"argument {name!r}: upstream output {output_label(value)} changed "
                f"({was}{(value.hash or '?')[:HASH_CHARS]}){see}",
                argument=name,
                old=old,
                new=value.hash,
            )
        if iter_lazy(value):
            return Reason(
                "upstream",
                f"argument {name!r} changed: it holds task outputs or "
                f"files, and at least one of them changed",
                argument=name,
            )
        # Small scalars are logged by value too (see Index.arg_values): say what it was.
        old_text = self.repo.index.arg_values([old_hash]).get(old_hash) if old_hash else None
        new_text = short_repr(value)
        change = f"{old_text} → {new_text}" if old_text is not None else f"now {new_text}"
        return Reason(
            "argument",
            f"argument {name!r} changed: {change}",
            argument=name,
            old=old_text,
            new=short_repr(value),
        )


def _part_name(label: str) -> str:
    """A code part's label in words: `assignment SCALE` -> `assignment 'SCALE'`."""
    kind, _, name = label.partition(" ")
    if kind == "code" and name.startswith("of "):
        return f"the code of {name[3:]}"
    if kind.startswith("code_deps["):
        return f"{kind} ({name})"
    if kind == "module":
        return f"module {name}"
    return f"{kind} {name!r}" if name else kind


def _code_scope(call: Call) -> str:
    task = call.task
    if task.version is not None:
        return f"version of {task.name} is now {task.version!r}"
    if task.code_hash_mode is CodeHashMode.FUNCTION:
        return f"function {task.name}, the module-level names it uses, or its code_deps"
    return f"module {task.module} (or the code_deps of {task.name})"


def render_why(target: str, entries: list[WhyEntry], *, color: bool = False) -> str:
    """One block per task call to compute: its outputs, then one line per reason."""
    if not entries:
        return f"{target}: every output is cached; nothing would run\n"
    lines: list[Text] = []
    for entry in entries:
        hashes = ", ".join(h[:HASH_CHARS] for h in entry.out_hashes) or "?" * HASH_CHARS
        state = (
            Text("  unknown", style="yellow")
            if not entry.out_hashes
            else Text("  missing", style="red")
        )
        lines.append(Text(f"{entry.label}  ", style="bold") + Text(hashes, style="dim") + state)
        if entry.compared_with is not None and entry.reasons[0].kind != "evicted":
            lines.append(
                Text(
                    f"  compared with its run of {local_time(entry.compared_with.time)}",
                    style="dim",
                )
            )
        lines += [Text(f"  - {reason.message}") for reason in entry.reasons]
    return to_string(lines, color=color)
