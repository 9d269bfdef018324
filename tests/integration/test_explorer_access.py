"""Who may look at ``fedchain explorer``: loopback only in plain HTTP; anywhere else (or with
``--identity``) HTTPS that requires a consortium member's TLS client certificate, the same
certificates as the data plane, and the page names the member looking. Nothing writes.
"""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path
from typing import Any

import pytest
from tests.integration.explorer_support import RUN, Explorer, explorer_cli, record_run

from fedchain.pki import Consortium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, consortium_dir: Path,
             consortium: Consortium) -> Path:  # fmt: skip
    path = tmp_path_factory.mktemp("explorer-access") / "ledger.sqlite"
    record_run(path, consortium, consortium_dir, rounds=1, planned=1)
    return path


def tls_files(pki: Path, org: str, name: str) -> tuple[Path, Path]:
    folder = pki / org / "users" / name / "tls"
    stem = "server" if name == "aggregator" else "client"
    return folder / f"{stem}.crt", folder / f"{stem}.key"


def get(url: str, context: ssl.SSLContext, path: str = "/",
        method: str = "GET") -> tuple[int, str]:  # fmt: skip
    host, _, port = url.removeprefix("https://").partition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def client_context(pki: Path, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    """Trusts the aggregator's TLS CA (the server certificate is the aggregator's)."""
    context = ssl.create_default_context(cafile=pki / "org1" / "msp" / "tlscacerts" / "ca.pem")
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


@pytest.fixture(scope="module")
def mtls(recorded: Path, consortium_dir: Path) -> Any:
    aggregator = consortium_dir / "org1" / "users" / "aggregator"
    with Explorer("--ledger", recorded, "--pki", consortium_dir, "--identity", aggregator) as ex:
        yield ex


def test_a_member_sees_who_is_looking(mtls: Explorer, consortium_dir: Path) -> None:
    assert mtls.url.startswith("https://127.0.0.1:")
    status, body = get(
        mtls.url, client_context(consortium_dir, tls_files(consortium_dir, "org2", "client1"))
    )
    assert status == 200
    assert "viewing as org2/client1" in body
    assert f'data-run="{RUN}"' in body


def test_a_client_without_a_member_certificate_is_refused(
    mtls: Explorer, consortium_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        get(mtls.url, client_context(consortium_dir, None))
    from fedchain.pki import init_consortium

    foreign = tmp_path_factory.mktemp("foreign") / "pki"
    init_consortium(foreign, consortium="other", orgs=("org2",), aggregator="org2")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        get(mtls.url, client_context(consortium_dir, tls_files(foreign, "org2", "client1")))


def test_the_browser_shows_the_member(mtls: Explorer, consortium_dir: Path, browser: Any) -> None:
    cert, key = tls_files(consortium_dir, "org3", "client1")
    context = browser.new_context(
        ignore_https_errors=True,  # Chromium does not know the consortium's TLS CA
        client_certificates=[{"origin": mtls.url, "certPath": str(cert), "keyPath": str(key)}],
    )
    try:
        page = context.new_page()
        page.goto(f"{mtls.url}/run/{RUN}")
        assert page.locator("#viewer").inner_text() == "viewing as org3/client1"
        assert page.locator("#rounds-done").inner_text() == "1 of 1"
    finally:
        context.close()


def test_nothing_writes(mtls: Explorer, consortium_dir: Path) -> None:
    context = client_context(consortium_dir, tls_files(consortium_dir, "org2", "client1"))
    for method in ("POST", "PUT", "DELETE"):
        status, _ = get(mtls.url, context, f"/run/{RUN}", method)
        assert status == 405


def test_loopback_serves_plain_http_to_this_machine(recorded: Path) -> None:
    with Explorer("--ledger", recorded) as explorer:
        assert explorer.url.startswith("http://127.0.0.1:")
        host, _, port = explorer.url.removeprefix("http://").partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/")
        body = conn.getresponse().read().decode()
        conn.close()
        assert "viewing from this machine (loopback)" in body


@pytest.mark.parametrize(("args", "message"), [
    (["--address", "0.0.0.0:0"], "serving on 0.0.0.0 (not loopback) needs mTLS: give --pki"),
    (["--address", "nowhere"], "address 'nowhere' is not host:port"),
    (["--report", RUN], "--report RUN and --out FILE go together"),
    (["--identity", "{pki}/org2/users/client1", "--pki", "{pki}"],
     "the TLS certificate of org2/client1 cannot serve HTTPS (no serverAuth)"),
])  # fmt: skip
def test_bad_options_are_one_line(
    recorded: Path, consortium_dir: Path, args: list[str], message: str
) -> None:
    argv = [a.format(pki=consortium_dir) for a in args]
    result = explorer_cli("--ledger", recorded, *argv)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_a_missing_ledger_is_one_line(tmp_path: Path) -> None:
    result = explorer_cli("--ledger", tmp_path / "none.sqlite")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: no ledger file at {tmp_path / 'none.sqlite'}"


def test_the_event_stream_resumes_after_the_last_entry_id(recorded: Path) -> None:
    """What EventSource does on a reconnection: Last-Event-ID names the last entry it had."""
    with Explorer("--ledger", recorded) as explorer:
        host, _, port = explorer.url.removeprefix("http://").partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/events?after=0", headers={"Last-Event-ID": "3"})
        stream = conn.getresponse()
        assert stream.getheader("Content-Type") == "text/event-stream"
        ids = []
        while not ids or ids[-1] < 6:  # the recorded run's last entry is 6
            line = stream.readline().decode()
            if line.startswith("id: "):
                ids.append(int(line[4:]))
        conn.close()
        assert ids == [4, 5, 6]
