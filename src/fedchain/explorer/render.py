"""HTML pages from a :class:`~fedchain.explorer.model.LedgerView` (Jinja2, autoescaped).

Templates and the stylesheet are package files (``templates/``, ``static/``): nothing is
fetched from the network, by the server or by the browser. :func:`report` inlines the
stylesheet and the SVG charts into one file that opens offline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2

from fedchain.errors import ConfigError
from fedchain.explorer.charts import line_chart
from fedchain.explorer.model import Run
from fedchain.explorer.source import LedgerSource, Verdict

__all__ = ["Page", "Renderer", "static_file"]

_STATIC = resources.files("fedchain.explorer") / "static"


def static_file(name: str) -> bytes | None:
    """A packaged asset by name, or None (names are plain file names, never paths)."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    target = _STATIC / name
    return target.read_bytes() if target.is_file() else None


def _time(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(sha: str | None) -> str:
    return "-" if not sha else f"{sha[:12]}…"


def _num(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Page:
    """Who the page is for: the viewer line shown in the header ('' in a report)."""

    viewer: str = ""


class Renderer:
    """Renders the explorer's pages for one :class:`LedgerSource`."""

    def __init__(self, source: LedgerSource) -> None:
        self.source = source
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("fedchain.explorer", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True,
        )  # fmt: skip
        self.env.filters.update(time=_time, short=_short, num=_num)

    def _render(self, template: str, page: Page, **context: Any) -> str:
        view, source = self.source.view, self.source
        return self.env.get_template(template).render(
            view=view, source=source, page=page, broken=source.broken,
            verdict=source.last_verdict(), **context,
        )  # fmt: skip

    def runs(self, page: Page) -> str:
        runs = sorted(self.source.view.runs.values(), key=lambda r: r.seq, reverse=True)
        return self._render("runs.html", page, runs=runs, title="Runs")

    def run(self, run_id: str, page: Page) -> str:
        run = self._run(run_id)
        charts = [(m, line_chart(m, run.series(m))) for m in run.metric_names()]
        rounds = [run.rounds[n] for n in sorted(run.rounds)]
        return self._render("run.html", page, run=run, charts=charts, rounds=rounds,
                            title=f"Run {run.id}")  # fmt: skip

    def contributions(self, run_id: str, page: Page) -> str:
        run = self._run(run_id)
        return self._render("contributions.html", page, run=run, rows=run.contributions(),
                            title=f"Contributions to {run.id}")  # fmt: skip

    def lineage(self, run_id: str, page: Page) -> str:
        run = self._run(run_id)
        return self._render("lineage.html", page, run=run, steps=run.lineage(),
                            files=self._files(), title=f"Model lineage of {run.id}")  # fmt: skip

    def integrity(self, verdict: Verdict, page: Page) -> str:
        return self._render("integrity.html", page, checked=verdict, title="Integrity")

    def report(self, run_id: str, verdict: Verdict) -> str:
        """One self-contained HTML file: the run, its contributions, lineage and integrity."""
        run = self._run(run_id)
        css = static_file("explorer.css") or b""
        charts = [(m, line_chart(m, run.series(m))) for m in run.metric_names()]
        return self._render(
            "report.html", Page(), run=run, charts=charts,
            rounds=[run.rounds[n] for n in sorted(run.rounds)], rows=run.contributions(),
            steps=run.lineage(), files=self._files(), checked=verdict, css=css.decode(),
            title=f"Report of run {run.id}", generated=_time(int(time.time() * 1000)),
        )  # fmt: skip

    def missing(self, what: str, page: Page) -> str:
        return self._render("missing.html", page, what=what, title="Not found")

    def _run(self, run_id: str) -> Run:
        run = self.source.view.runs.get(run_id)
        if run is None:
            raise ConfigError(f"no run {run_id!r} on {self.source.label}")
        return run

    def _files(self) -> dict[str, str]:
        """Model hash -> verified / missing / altered, when --models was given and checked."""
        verdict = self.source.last_verdict()
        checked = verdict.models if verdict is not None else None
        if checked is None:
            return {}
        out = dict.fromkeys(checked.verified, "verified")
        out.update(dict.fromkeys(checked.missing, "missing"))
        out.update(dict.fromkeys(checked.mismatched, "altered"))
        return out
