"""Write the generated reference documents: docs/study-reference.md (from the pydantic models),
docs/cli.md (from the click commands) and docs/study.schema.json (the study file's JSON Schema).

    python scripts/gen_docs.py          # (re)write them
    python scripts/gen_docs.py --check  # exit 1 naming the stale ones (tests/unit/test_generated_docs.py)
"""
from __future__ import annotations

import sys
from pathlib import Path

from llenergymeasure.cli.reference import generated_files

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for rel, content in generated_files().items():
        path = REPO / rel
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            continue
        stale.append(rel)
        if not check:
            path.write_text(content, encoding="utf-8")
            print(f"wrote {rel}")
    if check and stale:
        print("stale (run `python scripts/gen_docs.py`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
