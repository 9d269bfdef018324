"""fedchain.pki.ceremony: bundles and definitions refuse what is malformed or inconsistent."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fedchain.errors import PKIError, SignatureError
from fedchain.pki.ceremony import (
    OrgBundle,
    parse_bundle,
    parse_definition,
    propose,
    read_bundle,
)


@pytest.fixture(scope="module")
def bundles(consortium_dir: Path) -> dict[str, OrgBundle]:
    return {org: read_bundle(consortium_dir, org) for org in ("org1", "org2", "org3")}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "is not JSON"),
        (b"[]", "is not a fedchain organization bundle"),
        (b'{"format": "fedchain-org-bundle/1", "org": 5}', "'org' must be"),
        (b'{"format": "fedchain-org-bundle/1", "org": "org1", "ca": "x"}', "'ca' is not a PEM"),
    ],
)
def test_malformed_bundles_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(PKIError, match=message):
        parse_bundle(data)


def test_a_bundle_round_trips_and_its_parts_must_belong_together(
    bundles: dict[str, OrgBundle],
) -> None:
    org2 = bundles["org2"]
    assert parse_bundle(org2.to_json()).doc() == org2.doc()
    with pytest.raises(PKIError, match="signature fails"):
        replace(org2, admin=bundles["org3"].admin).check()  # org3's admin under org2's CA
    with pytest.raises(PKIError, match="is not a self-signed tlsca"):
        replace(org2, tlsca=org2.ca).check()
    with pytest.raises(PKIError, match="names another organization"):
        replace(org2, ca=bundles["org3"].ca).check()


def test_definitions_round_trip_and_refuse_tampering(bundles: dict[str, OrgBundle]) -> None:
    defn = propose("hospitals", "org1", list(bundles.values()))
    assert defn.version == 1
    assert defn.previous_sha256 is None
    assert [b.org for b in defn.orgs] == ["org1", "org2", "org3"]
    assert parse_definition(defn.to_json()).sha256 == defn.sha256
    with pytest.raises(PKIError, match="lacks the signatures of org1, org2, org3"):
        defn.verify()
    forged = defn.with_signature("org1", b"\x30\x06\x02\x01\x01\x02\x01\x01")
    doc = json.loads(forged.to_json())
    doc["signatures"] = {org: doc["signatures"]["org1"] for org in ("org1", "org2", "org3")}
    with pytest.raises(SignatureError, match="'org1'"):
        parse_definition(json.dumps(doc).encode()).verify()
    doc["orgs"].reverse()
    with pytest.raises(PKIError, match="sorted by id"):
        parse_definition(json.dumps(doc).encode())
    with pytest.raises(PKIError, match="aggregator"):
        propose("hospitals", "org9", list(bundles.values()))
    with pytest.raises(PKIError, match="twice"):
        propose("hospitals", "org1", [bundles["org1"], bundles["org1"]])
