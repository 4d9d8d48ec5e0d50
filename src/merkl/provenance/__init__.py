"""Provenance: the Merkle DAG of a pipeline and the run log, made browsable.

- `pipeline.py` builds a pipeline's DAG without running it (as `merkl run --dry` does);
- `model.py` turns it into plain nodes and edges with cached / missing states;
- `text.py`, `dot.py` render it (a tree for the terminal; Graphviz dot, svg, png);
- `history.py` reads the run log: runs by hash or hash prefix, which argument came from which
  parent output, which file path a content hash belongs to.

The commands live in `merkl.ops.{dag,log,show,why}`; the `merkl` catalog source builds its
lineage from `history.py`.
"""
