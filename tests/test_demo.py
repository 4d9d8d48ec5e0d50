"""`make demo` keeps working: the demo script runs end to end against the installed merkl."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT


def test_demo_script_runs_end_to_end(tmp_path: Path):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MERKL_DEMO_DIR": str(tmp_path / "demo"),
    }
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "demo.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "7056" in out
    assert "([1, 2, 3], [4, 5, 6])" in out
    assert out.count("merkl: 0 task(s) run") >= 3  # cache hits, and the fresh checkout
    assert (tmp_path / "demo-clone" / "model.bin").exists()
    assert proc.stdout.rstrip().endswith(
        f"cd {tmp_path / 'demo'} && merkl ui      # then open http://127.0.0.1:8765/"
    )
