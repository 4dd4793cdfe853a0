"""The in-container measurement harness: `python -m llem_harness RUN_DIR`.

Reads RUN_DIR/experiment.json, measures, writes RUN_DIR/result.json (exit 0) or
RUN_DIR/error.json (exit 1), and streams JSON-lines progress on stdout. Imports only
`llenergymeasure.domain` from the host package; engine and NVML libraries lazily.
"""
