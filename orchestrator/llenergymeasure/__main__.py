"""`python -m llenergymeasure ...` is `llem ...` (used by tests and where scripts are not on PATH)."""
from .cli.main import main

main()
