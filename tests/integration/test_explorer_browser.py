"""``fedchain explorer`` as a person sees it: the real server process, Debian's Chromium.

A run is recorded through the API (round 1 refuses org3's update, round 2 org3 fails and drops
out); the pages must show the round count, one chart point per round, the refusal with its
reason, the dropout with its stage; a round appended while the page is open must appear on it
without a reload; a tampered copy must be shown failing at the tampered entry; the report
file must open with the network off; the ledger file is never written.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.explorer_support import (
    REFUSAL,
    RUN,
    Explorer,
    append_round,
    explorer_cli,
    identities,
    open_writers,
    record_run,
)
from tests.integration.test_audit import forge

from fedchain.pki import Consortium

pytestmark = pytest.mark.slow

#: Upper bound of a wait on the page, in ms: generous (the machine may be busy), yet below the
#: SSE keep-alive interval (15 s), so only the push on a new entry can meet it.
PAGE_WAIT = 10_000


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, consortium_dir: Path,
             consortium: Consortium) -> Path:  # fmt: skip
    path = tmp_path_factory.mktemp("explorer") / "ledger.sqlite"
    record_run(path, consortium, consortium_dir, rounds=2, planned=3)
    return path


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_page_shows_rounds_charts_refusals_and_dropouts(recorded: Path, page: Any) -> None:
    before = digest(recorded)
    with Explorer("--ledger", recorded) as explorer:
        page.goto(explorer.url + "/")
        row = page.locator(f'tr[data-run="{RUN}"]')
        assert row.locator("td.done").inner_text() == "2 of 3"
        assert row.locator("td.status").inner_text() == "in progress"
        row.get_by_role("link", name=RUN).click()
        page.wait_for_url(f"**/run/{RUN}")
        assert page.locator("#rounds-done").inner_text() == "2 of 3"
        assert page.locator("#rounds tbody tr").count() == 2
        for metric in ("accuracy", "loss"):
            chart = page.locator(f'svg.chart[data-metric="{metric}"]')
            assert chart.locator("circle.pt").count() == 2  # one point per round
        first = page.locator('#rounds tr[data-round="1"]')
        assert first.locator(".refused").inner_text() == f"org3: {REFUSAL}"
        second = page.locator('#rounds tr[data-round="2"]')
        assert second.locator(".drop").inner_text() == "org3 at train"
        assert "error: ClientApp error: out of memory" in second.inner_text()
        assert "not selected" not in first.inner_text()  # org3 was selected, then refused

        page.goto(f"{explorer.url}/run/{RUN}/contributions")
        org3 = page.locator('#contributions tr[data-org="org3"] td')
        assert [org3.nth(i).inner_text() for i in range(8)] == \
            ["org3", "2", "1", "0", "1", "1", "1", "80"]  # fmt: skip

        page.goto(f"{explorer.url}/run/{RUN}/lineage")
        assert page.locator("#lineage tbody tr").count() == 3  # initial model, rounds 1 and 2

        page.goto(explorer.url + "/integrity")
        assert page.locator("#verdict h2").inner_text() == "Intact"
        assert page.locator("#head-seq").inner_text() == "11"
        assert page.locator("#broken").count() == 0
    assert digest(recorded) == before  # the explorer never wrote to the file


def test_a_new_round_appears_on_the_open_page(
    recorded: Path, consortium_dir: Path, page: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "live.sqlite"
    shutil.copy(recorded, ledger)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    with Explorer("--ledger", ledger) as explorer:
        page.goto(f"{explorer.url}/run/{RUN}")
        page.wait_for_function("() => document.body.dataset.head === '11'")
        assert page.locator("#rounds tbody tr").count() == 2
        loaded = len(requests)
        writers = open_writers(ledger, consortium_dir)  # written while the explorer reads
        try:
            append_round(writers, 3)
        finally:
            for handle in writers.values():
                handle.close()
        page.locator('#rounds tr[data-round="3"]').wait_for(timeout=PAGE_WAIT)
        page.wait_for_function("() => document.body.dataset.head === '16'", timeout=PAGE_WAIT)
        assert page.locator("#rounds-done").inner_text() == "3 of 3"
        assert page.locator("#run-status").inner_text() == "finished"
        chart = page.locator('svg.chart[data-metric="accuracy"]')
        assert chart.locator("circle.pt").count() == 3
        assert "entry 16: close by org1 (round 3)" in page.locator("#live-feed").inner_text()
    # No reload and no polling: after the first load, only the page's own refetches (and, were
    # the event stream to drop, EventSource's reconnection).
    later = [u for u in requests[loaded:] if not u.startswith(f"{explorer.url}/events?")]
    assert later
    assert all(u == f"{explorer.url}/run/{RUN}" for u in later), later


def _flip_body(path: Path, seq: int) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("DROP TRIGGER IF EXISTS entries_no_update")
            body = bytearray(conn.execute("SELECT body FROM entries WHERE seq = ?",
                                          (seq,)).fetchone()[0])  # fmt: skip
            body[body.index(b'"num_examples":') + 15] ^= 0x01  # "1.." -> "0..": other bytes
            conn.execute("UPDATE entries SET body = ? WHERE seq = ?", (bytes(body), seq))
    finally:
        conn.close()


def test_a_tampered_ledger_is_shown_failing_at_its_entry(
    recorded: Path, page: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "tampered.sqlite"
    shutil.copy(recorded, ledger)
    _flip_body(ledger, 8)  # org2's update of round 2
    with Explorer("--ledger", ledger) as explorer:
        page.goto(f"{explorer.url}/run/{RUN}")
        banner = page.locator("#broken")
        assert "fails verification at entry 8" in banner.inner_text()
        assert "hash does not match" in banner.inner_text()
        page.goto(explorer.url + "/integrity")
        assert page.locator("#verdict h2").inner_text() == "Fails at entry 8"
        assert "hash does not match its body" in page.locator("#verdict .detail").inner_text()


def test_a_fault_only_the_audit_sees_reaches_the_open_page(
    recorded: Path, consortium_dir: Path, page: Any, tmp_path: Path
) -> None:
    """A correctly chained entry, signed with org2's real key, that the write rules refuse (a
    task from a non-aggregator): the reader accepts it, the live verdict names it."""
    ledger = tmp_path / "forged.sqlite"
    shutil.copy(recorded, ledger)
    task = {"v": 1, "kind": "task", "org": "org2", "run": RUN, "round": 3, "task": "t9",
            "type": "train", "model_sha256": None, "deadline": 0,
            "recipients": [{"org": "org3", "payload_sha256": "0" * 64, "payload_size": 1}]}
    forge(identities(consortium_dir)["org2"], task)(ledger)  # entry 12
    with Explorer("--ledger", ledger) as explorer:
        page.goto(f"{explorer.url}/run/{RUN}")
        banner = page.locator("#broken")
        banner.wait_for(timeout=PAGE_WAIT)  # in the page, or pushed once the startup audit ends
        assert "fails verification at entry 12" in banner.inner_text()
        assert "role.aggregator_only" in banner.inner_text()
        page.goto(explorer.url + "/integrity")
        assert page.locator("#verdict h2").inner_text() == "Fails at entry 12"


def test_the_report_opens_offline(recorded: Path, page: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = explorer_cli("--ledger", recorded, "--report", RUN, "--out", out)
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    for outside in ("<script", "<link", "src="):
        assert outside not in html
    fetched: list[str] = []
    page.context.route("**/*", lambda route: (fetched.append(route.request.url),
                                              route.continue_()))  # fmt: skip
    page.context.set_offline(True)
    page.goto(out.as_uri())
    assert fetched == [out.as_uri()]  # nothing but the file itself
    assert page.locator("h1").first.inner_text() == f"Run {RUN}"
    assert page.locator("#verdict h2").inner_text() == "Intact"
    assert page.locator('svg.chart[data-metric="loss"] circle.pt').count() == 2
    assert REFUSAL in page.locator("#rounds").inner_text()
    assert page.locator("#contributions tbody tr").count() == 2
    # A stylesheet applied: the verdict heading is green, from the inlined CSS.
    color = page.eval_on_selector("#verdict h2", "e => getComputedStyle(e).color")
    assert color == "rgb(17, 112, 58)"


def test_the_report_of_an_unknown_run_is_one_line(recorded: Path, tmp_path: Path) -> None:
    result = explorer_cli("--ledger", recorded, "--report", "nope", "--out", tmp_path / "x.html")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no run 'nope' on {recorded}"
    ]  # fmt: skip
    assert not (tmp_path / "x.html").exists()
