"""Entry point. Exits with os._exit once everything is written and flushed: interpreter
teardown with torch and transformers loaded takes about a second and measures nothing."""
import logging
import os
import sys

from .pipeline import main

if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
