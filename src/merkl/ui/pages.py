"""HTML for each page, rendered on the server from the same dicts the `/api/…` twins return.

Server-side rendering keeps the first paint independent of the browser's script (and of the
DAG's size: the SVG arrives laid out); `static/ui.js` only adds clicks, details and live
refresh. Every value is escaped here; nothing outside merkl is linked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from merkl.provenance.text import local_time
from merkl.ui.dag_view import VIEW_PARAMETER, DagPage
from merkl.ui.svg import Graph, graph_svg
from merkl.units import human_size

_NAV = (("/", "Overview"), ("/runs", "Runs"), ("/files", "Files"), ("/lineage", "Lineage"))
_HASH_SHOWN = 16


def page(
    title: str,
    body: str,
    *,
    path: str,
    api: str,
    version: str,
    writes: bool = False,
) -> str:
    """The page shell: header with navigation, `body` in <main>, a details panel."""
    links = "".join(
        f'<a href="{href}"{" class=current" if href == path else ""}>{name}</a>'
        for href, name in _NAV
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · merkl ui</title>"
        '<link rel="icon" href="/static/favicon.svg">'
        '<link rel="stylesheet" href="/static/ui.css">'
        '<script src="/static/ui.js" defer></script></head>'
        f'<body data-api="{escape(api)}" data-version="{escape(version)}" '
        f'data-writes="{int(writes)}">'
        f'<header><a class="brand" href="/">merkl ui</a><nav>{links}</nav>'
        '<span id="live" title="refreshes when the repository changes">live</span></header>'
        f"<main>{body}</main>"
        '<aside id="details" hidden><button type="button" class="close" '
        'aria-label="close">&times;</button><div class="content"></div></aside>'
        "</body></html>\n"
    )


def error_body(message: str) -> str:
    return f'<h1>Error</h1><p class="error">{escape(message)}</p>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "") -> str:
    """A table whose cells are already HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _state(state: str) -> str:
    return f'<span class="state {escape(state.replace(" ", "-"))}">{escape(state)}</span>'


def _hash(digest: str, chars: int = _HASH_SHOWN) -> str:
    digest = digest.removeprefix("blake3:")
    return f'<code title="{escape(digest)}">{escape(digest[:chars])}</code>'


def dag_href(target: str, args: dict[str, str] | None = None) -> str:
    query = f"?{urlencode(args)}" if args else ""
    return f"/dag/{quote(target)}{query}"


# -- overview -------------------------------------------------------------------------------
def overview_body(data: dict[str, Any]) -> str:
    pipelines = _table(
        ("pipeline", "parameters", "tasks it calls", ""),
        (
            (
                f'<a href="{escape(dag_href(p["target"]))}">{escape(p["target"])}</a>',
                escape(", ".join(p["parameters"])),
                escape(", ".join(p["tasks"])),
                escape(p["doc"]),
            )
            for p in data["pipelines"]
        ),
        cls="pipelines",
    )
    if not data["pipelines"]:
        pipelines = (
            "<p>No pipelines found: a pipeline is a function that calls <code>@task</code>s, "
            "in a <code>.py</code> file of this repository.</p>"
        )
    states = ", ".join(f"{n} {escape(s)}" for s, n in data["file_states"].items())
    remotes = _table(
        ("remote", "url", ""),
        (
            (
                escape(r["name"]),
                f"<code>{escape(r['url'])}</code>",
                "default" if r.get("default") else escape(r.get("error", "")),
            )
            for r in data["remotes"]
        ),
        cls="remotes",
    )
    return (
        f"<h1>{escape(data['root'])}</h1>"
        f"<section><h2>Pipelines</h2>{pipelines}</section>"
        f'<section><h2>Recent runs <a class="more" href="/runs">all runs</a></h2>'
        f"{runs_table(data['runs'])}</section>"
        f"<section><h2>Tracked files "
        f'<a class="more" href="/files">{len(data["files"])} tracked'
        f"{': ' + states if states else ''}</a></h2>"
        f"{files_table(data['files'][:20])}</section>"
        f"<section><h2>Remotes</h2>"
        f"{remotes if data['remotes'] else '<p>No remotes configured.</p>'}</section>"
    )


# -- runs -----------------------------------------------------------------------------------
def runs_table(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "<p>No outputs computed yet: <code>merkl run module.function</code> logs them.</p>"
    return _table(
        ("time", "task", "duration", "size", "cached", "output"),
        (
            (
                escape(local_time(r["time"])),
                escape(r["label"]),
                f"{r['duration']:.3f} s",
                escape(human_size(r["size"])),
                _state("cached" if r["cached"] else "evicted"),
                _hash(r["output"]),
            )
            for r in runs
        ),
        cls="runs",
    )


def runs_body(data: dict[str, Any]) -> str:
    options = "".join(
        f'<option value="{escape(t)}"{" selected" if t == data["task"] else ""}>'
        f"{escape(t)}</option>"
        for t in data["tasks"]
    )
    since = "" if data["since_hours"] is None else f"{data['since_hours']:g}"
    form = (
        '<form class="filters" method="get" action="/runs">'
        f'<label>task <select name="task"><option value="">all</option>{options}</select></label>'
        f'<label>last <input name="since" size="4" value="{escape(since)}"> hours</label>'
        f'<label>at most <input name="limit" size="5" value="{data["limit"]}"> runs</label>'
        '<button type="submit">filter</button></form>'
    )
    total = sum(r["duration"] for r in data["runs"])
    size = sum(r["size"] for r in data["runs"])
    summary = (
        f'<p class="summary">{len(data["runs"])} outputs, {total:.3f} s of task time, '
        f"{escape(human_size(size))}</p>"
    )
    return f"<h1>Runs</h1>{form}{summary}{runs_table(data['runs'])}"


# -- files ----------------------------------------------------------------------------------
def files_table(files: list[dict[str, Any]], *, remotes: bool = False) -> str:
    if not files:
        return "<p>No tracked files: <code>merkl track PATH</code> tracks one.</p>"
    header = ["path", "type", "size", "status", "detail", "hash"] + (
        ["remotes"] if remotes else []
    )
    return _table(
        header,
        (
            [
                f'<span class="path">{escape(f["path"])}</span>',
                escape(f["type"]),
                escape(human_size(f["size"])),
                _state(f["state"]),
                escape(f.get("detail") or f.get("hint") or ""),
                _hash(f["hash"]),
            ]
            + ([escape(", ".join(f.get("remotes", [])) or "none")] if remotes else [])
            for f in files
        ),
        cls="files",
    )


def files_body(data: dict[str, Any]) -> str:
    checked = data["remotes_checked"]
    link = (
        '<a class="more" href="/files">hide remotes</a>'
        if checked
        else '<a class="more" href="/files?remotes=1">check which remotes hold them</a>'
    )
    problems = "".join(f'<p class="error">{escape(p)}</p>' for p in data["problems"])
    return f"<h1>Tracked files {link}</h1>{problems}{files_table(data['files'], remotes=checked)}"


# -- DAG ------------------------------------------------------------------------------------
def dag_body(view: DagPage, parameters: list[tuple[str, str, str]]) -> str:
    """`parameters`: (name, current value, what leaving it out means) of the pipeline's
    parameters, for the form."""
    data = view.data
    counts = data["counts"]
    fields = "".join(
        f'<label>{escape(name)} <input name="{escape(name)}" value="{escape(value)}" '
        f'placeholder="{escape(left_out)}"></label>'
        for name, value, left_out in parameters
    )
    given = {name: value for name, value, _ in parameters if value}
    other = "full" if view.collapsed else "collapsed"
    switch = dag_href(view.target, {**given, VIEW_PARAMETER: other})
    summary = (
        f'<p class="summary"><span class="state cached">{counts.get("cached", 0)} cached</span> '
        f'<span class="state missing">{counts.get("missing", 0)} missing</span> '
        f'<span class="state unknown">{counts.get("unknown", 0)} unknown</span> · '
        f"{len(view.dag.nodes)} nodes, drawn {data['view']} "
        f'(<a href="{escape(switch)}">{other} view</a>) · '
        f"<code>merkl dag {escape(' '.join([view.target, *view.args]))}</code></p>"
    )
    form = (
        f'<form class="filters" method="get" action="{escape(dag_href(view.target))}">'
        f'{fields}<button type="submit">show</button></form>'
        if parameters
        else ""
    )
    return (
        f"<h1>{escape(view.target)}</h1>{form}{summary}"
        f'<div class="zoom"><button type="button" data-zoom="fit">fit</button>'
        f'<button type="button" data-zoom="1">100%</button></div>'
        f'<div class="canvas">{graph_svg(view.graph, title=view.target)}</div>'
        '<p class="legend"><span class="state cached">cached</span> output in the cache · '
        '<span class="state missing">missing</span> would be computed · '
        '<span class="state unknown">unknown</span> depends on a missing argument · '
        "click a box for its details</p>"
    )


# -- lineage --------------------------------------------------------------------------------
def lineage_body(data: dict[str, Any], graph: Graph) -> str:
    if data.get("error"):
        return f'<h1>Lineage</h1><p class="error">{escape(data["error"])}</p>'
    if not data["assets"]:
        return (
            "<h1>Lineage</h1><p>Nothing tracked yet: tracked files and the pipeline outputs "
            "written to them (<code>write_file(..., track=True)</code>) appear here.</p>"
        )
    warnings = "".join(f'<p class="warning">{escape(w)}</p>' for w in data["warnings"])
    rows = (
        (
            escape(a["name"]),
            escape(a["kind"]),
            escape(a["type"]),
            escape(", ".join(u.rsplit(":", 1)[-1][:_HASH_SHOWN] for u in a["upstreams"])),
        )
        for a in data["assets"]
    )
    return (
        f"<h1>Lineage</h1>{warnings}"
        f'<div class="canvas">{graph_svg(graph, title="lineage")}</div>'
        f"{_table(('asset', 'kind', 'type', 'made from'), rows, cls='lineage')}"
    )
