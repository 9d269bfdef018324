"""A member organization that tries to hog the aggregator's data plane (issue 12, point 3).

Run as a real process: ``python -m tests.integration.dataplane_hog PKI ORG ADDRESS N``. With
ORG's real TLS identity it keeps ``N`` ``Upload`` calls open that never send a header, opening
a call again as soon as one ends. Each end is printed as a JSON line: ``{"event": "ended",
"code": ..., "details": ..., "refused": <busy refusals so far>, "cut": <calls cut while
held>}``; ``{"event": "opened", "calls": N}`` once all are started.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import grpc

from fedchain.pki import identity_dir, load_consortium, load_identity
from fedchain.transport.framing import CHUNK_SIZE, SERVICE
from fedchain.transport.tls import channel_credentials, channel_options


def _never(done: threading.Event) -> object:
    """A request stream that sends nothing and ends with its call (``done``).

    gRPC reads it on a thread of its own; ending it when the call ends keeps that thread from
    outliving the call (thousands of refused calls would otherwise exhaust the process's threads).
    """
    done.wait()
    yield from ()


class Hog:
    def __init__(self, pki: Path, org: str, address: str) -> None:
        consortium = load_consortium(pki)
        identity = load_identity(identity_dir(pki, org, "client1"))
        creds = channel_credentials(identity, consortium)
        self.channel = grpc.secure_channel(address, creds, options=channel_options(CHUNK_SIZE))
        self.upload = self.channel.stream_stream(f"/{SERVICE}/Upload")
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.refused = 0
        self.cut = 0

    def hold(self) -> None:
        """One slot: keep an idle Upload open, again and again."""
        while not self.stop.is_set():
            done = threading.Event()
            call = self.upload(_never(done))
            code = call.code()  # blocks until the server ends the call
            done.set()
            with self.lock:
                busy = code == grpc.StatusCode.RESOURCE_EXHAUSTED
                self.refused += busy
                self.cut += not busy
                line = {"event": "ended", "code": code.name, "details": call.details(),
                        "refused": self.refused, "cut": self.cut}  # fmt: skip
                print(json.dumps(line), flush=True)
            self.stop.wait(0.05)  # an attacker's pace; not a synchronisation


def main() -> None:
    pki, org, address, count = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    hog = Hog(pki, org, address)
    threads = [threading.Thread(target=hog.hold, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    print(json.dumps({"event": "opened", "calls": count}), flush=True)
    sys.stdin.read()  # until the test closes our stdin or kills us
    hog.stop.set()


if __name__ == "__main__":
    main()
