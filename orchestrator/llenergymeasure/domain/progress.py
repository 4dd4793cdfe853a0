"""The harness's progress stream: one JSON object per stdout line.

Events: {"event": "stage", "stage": <name>}, {"event": "batch", "stage", "done", "total"},
{"event": "warning", "message"}, {"event": "environment", "summary"}, {"event": "done", "ok"}.
Every event carries `t` (unix seconds). The host uses them for progress and silence detection.
A stage is a step of the run's lifecycle (starting ... writing: llem_harness/progress.py lists them);
"phase" means only prefill or decode of a request.
"""
from __future__ import annotations

import json
from typing import Any



def encode_event(event: str, **fields: Any) -> str:
    import time

    return json.dumps({"event": event, "t": round(time.time(), 3), **fields}, default=str)


def decode_event(line: str) -> dict[str, Any] | None:
    """Parse one stdout line; non-JSON lines (stray prints from libraries) return None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None
