"""``fedchain explorer``: a read-only web view of a ledger that a consortium looks at together.

Layers, each in its own module: :mod:`.model` (what the pages show, built from entries),
:mod:`.source` (the read-only handle, following with ``Ledger.wait``, the live audit verdict),
:mod:`.charts` (SVG), :mod:`.render` (Jinja2 pages and the self-contained report),
:mod:`.access` (loopback or mTLS, who is looking) and :mod:`.server` (aiohttp, SSE).
"""

from fedchain.explorer.model import LedgerView
from fedchain.explorer.source import LedgerSource, Verdict

__all__ = ["LedgerSource", "LedgerView", "Verdict"]
