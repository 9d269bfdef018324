"""Turns on fedchain's Fabric timing trace in every process started with this folder first on
``PYTHONPATH`` (``benchmarks/demo_rounds.py --trace``): wall-clock lines on stderr, which the
demo saves in its logs/ folder."""

import logging
import sys

_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("TRACE %(message)s"))
_trace = logging.getLogger("fedchain.trace")
_trace.setLevel(logging.DEBUG)
_trace.addHandler(_handler)
_trace.propagate = False
