"""The built-in secure digits ClientApp with a kill switch, for the end-to-end dropout test.

``FEDCHAIN_TEST_KILL_AT=collect_masked`` makes the organization's process die (``os._exit``,
no cleanup, nothing announced) when the train message with its neighbours' shares arrives,
i.e. before it sends its masked update; ``unmask`` makes it die when the unmask request
arrives, i.e. after its masked update was sent. Unset: the plain secure app.
"""

from __future__ import annotations

import os

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

from fedchain.examples.digits import evaluate_handler, train_handler
from fedchain.flower import make_secagg_mod
from fedchain.flower.secagg_codec import secagg_record

_KINDS = {"collect_masked": "shares_delivery", "unmask": "unmask_request"}


def kill_switch(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Die on the configured secure-aggregation stage message."""
    record = secagg_record(msg.content) if msg.has_content() else None
    wanted = _KINDS.get(os.environ.get("FEDCHAIN_TEST_KILL_AT", ""))
    if record is not None and record["kind"] == wanted:
        os._exit(17)
    return call_next(msg, context)


app = ClientApp(mods=[kill_switch, make_secagg_mod(require_anchor=True)])
app.train()(train_handler)
app.evaluate()(evaluate_handler)
