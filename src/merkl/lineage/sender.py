"""The lineage sender: a child process that turns records into events and emits them.

`python -m merkl.lineage.sender` reads lineage records, one JSON document a line, on stdin
and emits each as an OpenLineage event through the client configured the OpenLineage way (it
inherits the run's environment and working directory). A line `{"flush": N}` is answered by `N`
on stdout once everything before it is sent. Building and serializing events with the client
costs about 1 ms of CPU per task; here it runs beside the pipeline instead of taking the GIL
from it. A run whose event cannot be sent gets one line on stderr and its later events are
dropped. The sender exits at the end of its input.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson


def warn(message: str) -> None:
    print(f"merkl: OpenLineage: {message}", file=sys.stderr, flush=True)


def main() -> None:
    from merkl.lineage.events import event_from_record

    client: Any = None
    failed: set[str] = set()
    for line in sys.stdin.buffer:
        record = orjson.loads(line)
        if "flush" in record:
            sys.stdout.write(f"{record['flush']}\n")
            sys.stdout.flush()
            continue
        run_id = record["pipelineRunId"]
        if run_id in failed:
            continue
        try:
            if client is None:
                from openlineage.client import OpenLineageClient

                client = OpenLineageClient()
            client.emit(event_from_record(record))
        except Exception as exc:  # a dead endpoint, a bad openlineage.yml: never the run
            failed.add(run_id)
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            warn(
                f"lineage of {record['pipeline']} not sent ({type(exc).__name__}: {text}); "
                f"the run itself is unaffected"
            )


if __name__ == "__main__":
    main()
