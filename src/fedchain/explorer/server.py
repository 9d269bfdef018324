"""The explorer's web server (aiohttp): pages, packaged assets, and live updates over SSE.

One task follows the ledger with ``Ledger.wait`` (in a worker thread, so the event loop never
blocks on it) and adds new entries to the view on the event loop, where pages are rendered;
each open page holds one Server-Sent Events stream and, told of a new entry, fetches itself
again. The browser runs no timer of its own. The server has no route that writes.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from fedchain.errors import CertificateError, ConfigError
from fedchain.explorer.access import viewer_of
from fedchain.explorer.render import Page, Renderer, static_file
from fedchain.explorer.source import LedgerSource
from fedchain.ledger.base import Entry
from fedchain.pki import Consortium

__all__ = ["ExplorerServer", "serve"]

#: How long one ``Ledger.wait`` blocks before the follower looks at the stop flag again.
FOLLOW_STEP: Final = 0.5
#: An idle SSE stream gets a comment line this often (proxies drop silent connections).
KEEPALIVE_S: Final = 15.0
_TYPES = {"css": "text/css", "js": "text/javascript", "png": "image/png"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ExplorerServer:
    """The aiohttp application over one :class:`LedgerSource` (read-only)."""

    def __init__(self, source: LedgerSource, consortium: Consortium | None = None) -> None:
        self.source = source
        self.renderer = Renderer(source)
        self.consortium = consortium  # set: every request must carry a member's certificate
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self.app = web.Application(middlewares=[self._who])
        self.app.add_routes([
            web.get("/", self._page(lambda r, p: self.renderer.runs(p))),
            web.get("/run/{run}", self._page(lambda r, p: self.renderer.run(r["run"], p))),
            web.get("/run/{run}/contributions",
                    self._page(lambda r, p: self.renderer.contributions(r["run"], p))),
            web.get("/run/{run}/lineage", self._lineage),
            web.get("/integrity", self._integrity),
            web.get("/events", self._events),
            web.get("/static/{name}", self._static),
        ])  # fmt: skip
        self.app.on_shutdown.append(self._on_shutdown)

    @web.middleware
    async def _who(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.consortium is None:
            request["viewer"] = "viewing from this machine (loopback)"
            return await handler(request)
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            request["viewer"] = f"viewing as {viewer_of(der, self.consortium)}"
        except CertificateError as exc:
            raise web.HTTPForbidden(text=f"not a consortium member: {exc}\n") from exc
        return await handler(request)

    def _page(self, render: Callable[[dict[str, str], Page], str]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            page = Page(viewer=request["viewer"])
            try:
                body = render(dict(request.match_info), page)
            except ConfigError as exc:
                body = self.renderer.missing(str(exc), page)
                return web.Response(text=body, status=404, content_type="text/html")
            return web.Response(text=body, content_type="text/html")

        return handler

    async def _integrity(self, request: web.Request) -> web.StreamResponse:
        verdict = await asyncio.to_thread(self.source.verdict)
        body = self.renderer.integrity(verdict, Page(viewer=request["viewer"]))
        return web.Response(text=body, content_type="text/html")

    async def _lineage(self, request: web.Request) -> web.StreamResponse:
        if self.source.models is not None:  # the model files are checked with the verdict
            await asyncio.to_thread(self.source.verdict)
        lineage = self._page(lambda r, p: self.renderer.lineage(r["run"], p))
        return await lineage(request)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        data = static_file(name)
        if data is None:
            raise web.HTTPNotFound()
        kind = _TYPES.get(name.rpartition(".")[2], "application/octet-stream")
        return web.Response(body=data, content_type=kind)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """SSE: one ``entry`` event per new entry after ``?after=`` (or Last-Event-ID)."""
        given = request.headers.get("Last-Event-ID") or request.query.get("after", "")
        after = int(given) if given.lstrip("-").isdigit() else self.source.view.head_seq
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        })  # fmt: skip
        await response.prepare(request)
        broken_sent = False
        try:
            while not self._stopping.is_set():
                changed = self._changed
                batch = self.source.entries_after(after)
                while batch:  # a page far behind gets every entry it missed, in batches
                    for entry in batch:
                        await response.write(_event(entry))
                    after = batch[-1].seq
                    batch = self.source.entries_after(after)
                if self._failing() and not broken_sent:
                    await response.write(b"event: broken\ndata: {}\n\n")
                    broken_sent = True
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    def _failing(self) -> bool:
        """The reader refused an entry, or the latest verdict found a fault."""
        verdict = self.source.last_verdict()
        return self.source.broken is not None or (verdict is not None and not verdict.ok)

    async def check(self) -> None:
        """Compute the verdict now; tell open pages if it fails (they then show the banner)."""
        verdict = await asyncio.to_thread(self.source.verdict)
        if not verdict.ok:
            self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self) -> None:
        """Add new ledger entries to the view as they are written, until stopped."""
        while not self._stopping.is_set():
            found = await asyncio.to_thread(self.source.wait_new, FOLLOW_STEP)
            if self.source.take(found) or self.source.broken is not None:
                self._notify()
            if self.source.broken is not None:
                await self._stopping.wait()  # nothing after a broken entry is trusted

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._stopping.set()
        self._notify()


def _event(entry: Entry) -> bytes:
    record = entry.record
    data = {"seq": entry.seq, "kind": record.kind, "org": record.org, "run": record.run,
            "round": record.round}  # fmt: skip
    return f"id: {entry.seq}\nevent: entry\ndata: {json.dumps(data)}\n\n".encode()


async def serve(
    source: LedgerSource, host: str, port: int, *, tls: ssl.SSLContext | None,
    consortium: Consortium | None, ready: Callable[[str], None],
) -> None:  # fmt: skip
    """Serve until cancelled; ``ready`` gets the URL once the socket listens."""
    server = ExplorerServer(source, consortium if tls is not None else None)
    runner = web.AppRunner(server.app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        await site.start()
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
        ready(f"{'https' if tls else 'http'}://{shown}:{bound[1]}/")
        # The first verdict in the background: a failure only the audit sees shows at once.
        checking = asyncio.ensure_future(server.check())
        await server.follow()
        await checking
    finally:
        await runner.cleanup()
