"""What the watcher records of one top-level evaluation (no OpenLineage import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merkl.graph import Plan
from merkl.lineage.config import LineageSettings
from merkl.placeholder import Lazy


@dataclass
class PipelineRun:
    """One top-level evaluation as the watcher saw it; the emitter thread makes its records."""

    settings: LineageSettings
    name: str
    root: Path  # paths are named relative to it
    targets: list[Lazy]
    started: float
    plans: list[Plan] = field(default_factory=list)
    failed: bool = False  # its records could not be made: drop the rest of this run's
    recorder: Any = None  # its RunRecorder, made on the emitter thread
