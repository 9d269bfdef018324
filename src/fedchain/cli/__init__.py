"""Command-line interface: thin typer commands over plain fedchain functions.

gRPC's C core logs failures straight to stderr (``E1205 ... add_port.cc ...``) before the
Python call that failed raises; the commands report those failures themselves, in one line.
So, unless the user asked for gRPC's log (``GRPC_VERBOSITY``), it is silenced; this runs
before any command module can import grpc.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")
