"""The built-in secure digits ClientApp of a member that sends share boxes that do not open.

A mod outside the secure-aggregation mod flips one bit of every ciphertext in the organization's
``share_bundle`` reply: its neighbours cannot open any of its boxes (issue 12, point 5). Before,
each honest organization failed its whole session on such a box and the round aborted.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

from fedchain.examples.digits import evaluate_handler, train_handler
from fedchain.flower import make_secagg_mod
from fedchain.flower.secagg_codec import secagg_record


def garble_boxes(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Let the secure-aggregation mod answer, then spoil every share box in its answer."""
    reply = call_next(msg, context)
    record = secagg_record(reply.content) if reply.has_content() else None
    if record is not None and record["kind"] == "share_bundle":
        record["ciphertexts"] = [bytes([b[0] ^ 1]) + b[1:] for b in record["ciphertexts"]]
    return reply


app = ClientApp(mods=[garble_boxes, make_secagg_mod(require_anchor=True)])
app.train()(train_handler)
app.evaluate()(evaluate_handler)
