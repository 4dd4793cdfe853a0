"""Entry point. Exits with os._exit once everything is written and flushed: interpreter
teardown with torch and transformers loaded takes about a second and measures nothing.
A harness forked from the pre-imported worker (worker.py) enters through `main_and_exit` too."""
import logging
import os
import sys

from .process_entry import main


def main_and_exit(argv: list[str]) -> None:
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    main_and_exit(sys.argv[1:])
