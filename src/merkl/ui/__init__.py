"""`merkl ui`: the repository's pipelines, runs, tracked files and lineage in a browser.

- `app.py`: the Starlette app (each page and its JSON twin under `/api/…`);
- `discover.py`: which pipelines the repository's Python files define (read, not imported);
- `dag_view.py`, `repo_views.py`, `lineage_view.py`: the data of each page;
- `layout.py`, `svg.py`: a linear-time layered layout drawn as inline SVG;
- `pages.py`: the HTML; `static/`: the page's own small script and stylesheet;
- `server.py`: starting uvicorn.
"""
