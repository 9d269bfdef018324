"""Unit tests for fedchain.pki: CAs, identities, signatures, org_of, the on-disk consortium."""

from __future__ import annotations

import ipaddress
import json
import shutil
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedchain.errors import (
    CertificateError,
    IdentityNotFoundError,
    KeyPasswordError,
    PKIError,
    SignatureError,
)
from fedchain.pki import (
    Consortium,
    create_ca,
    fingerprint,
    identity_dir,
    init_consortium,
    is_low_s,
    issue_identity,
    list_identities,
    load_ca,
    load_cert,
    load_consortium,
    load_identity,
    sign,
    verify_signature,
)
from fedchain.pki.signing import P256_ORDER

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def _ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> x509.ExtensionType:
    return cert.extensions.get_extension_for_class(cls).value


def _ous(cert: x509.Certificate) -> list[str]:
    return [
        str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    ]


# --- certificates -------------------------------------------------------------------------


def test_ca_is_self_signed_p256_ca() -> None:
    ca, key = create_ca("org1", now=NOW)
    ca.verify_directly_issued_by(ca)
    assert isinstance(key.curve, ec.SECP256R1)
    bc = _ext(ca, x509.BasicConstraints)
    assert isinstance(bc, x509.BasicConstraints)
    assert bc.ca
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "org1"
    assert ca.not_valid_after_utc == NOW + timedelta(days=3650)


def test_signing_identity_chain_subject_and_usage_without_eku() -> None:
    ca, ca_key = create_ca("org1", now=NOW)
    ident = issue_identity(ca, ca_key, org="org1", name="client1", role="client", now=NOW)
    ident.cert.verify_directly_issued_by(ca)
    assert (ident.org, ident.name, ident.role) == ("org1", "client1", "client")
    assert ident.cert.subject.rfc4514_string() == "OU=client,O=org1,CN=client1"
    # Fabric's MSP validates with Go's x509.Verify, which refuses an EKU lacking serverAuth:
    # signing certificates carry no EKU at all, as cryptogen and Fabric CA issue them.
    with pytest.raises(x509.ExtensionNotFound):
        ident.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    ku = _ext(ident.cert, x509.KeyUsage)
    assert isinstance(ku, x509.KeyUsage)
    assert ku.digital_signature
    assert not ku.key_cert_sign
    with pytest.raises(x509.ExtensionNotFound):
        ident.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    aki = _ext(ident.cert, x509.AuthorityKeyIdentifier)
    ski = _ext(ca, x509.SubjectKeyIdentifier)
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.digest


def test_server_signing_identity_has_neither_eku_nor_sans() -> None:
    ca, ca_key = create_ca("org1", now=NOW)
    ident = issue_identity(
        ca, ca_key, org="org1", name="aggregator", role="server", hosts=["agg"], now=NOW
    )
    for cls in (x509.ExtendedKeyUsage, x509.SubjectAlternativeName):
        with pytest.raises(x509.ExtensionNotFound):
            ident.cert.extensions.get_extension_for_class(cls)
    # Fabric NodeOUs: exactly one of client/peer/admin/orderer, so the aggregator can sign txs.
    assert [ou for ou in _ous(ident.cert) if ou in {"client", "peer", "admin", "orderer"}] == [
        "client"
    ]
    assert ident.role == "server"


def test_tls_client_certificate_is_client_auth_only() -> None:
    ca, ca_key = create_ca("org1", now=NOW, kind="tlsca")
    assert ca.subject.rfc4514_string() == "O=org1,CN=tlsca.org1"
    ident = issue_identity(
        ca, ca_key, org="org1", name="client1", role="client", now=NOW, profile="tls"
    )
    eku = _ext(ident.cert, x509.ExtendedKeyUsage)
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]  # type: ignore[call-overload]
    with pytest.raises(x509.ExtensionNotFound):
        ident.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize("role", ["server", "peer", "orderer"])
def test_tls_certificate_of_a_listening_role_has_server_auth_and_sans(role: str) -> None:
    ca, ca_key = create_ca("org1", now=NOW, kind="tlsca")
    ident = issue_identity(
        ca, ca_key, org="org1", name="node", role=role,  # type: ignore[arg-type]
        hosts=["agg.example.org", "10.0.0.7", "localhost"], now=NOW, profile="tls",
    )  # fmt: skip
    eku = _ext(ident.cert, x509.ExtendedKeyUsage)
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}  # type: ignore[call-overload]
    san = _ext(ident.cert, x509.SubjectAlternativeName)
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "agg.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.7"),
    ]


def test_each_profile_is_issued_by_its_own_ca_only() -> None:
    ca, ca_key = create_ca("org1", now=NOW)
    tlsca, tlsca_key = create_ca("org1", now=NOW, kind="tlsca")
    with pytest.raises(PKIError, match="tls certificate must be issued by the tlsca"):
        issue_identity(ca, ca_key, org="org1", name="c", role="client", now=NOW, profile="tls")
    with pytest.raises(PKIError, match="sign certificate must be issued by the ca"):
        issue_identity(tlsca, tlsca_key, org="org1", name="c", role="client", now=NOW)


def test_identity_validity_is_clipped_to_the_ca() -> None:
    ca, ca_key = create_ca("org1", now=NOW, valid_days=10)
    ident = issue_identity(ca, ca_key, org="org1", name="a", role="admin", now=NOW)
    assert ident.cert.not_valid_after_utc == ca.not_valid_after_utc


@pytest.mark.parametrize("bad", ["", "-org", ".org", "org 1", "org/1", "ü", "a" * 65, "org1\n"])
def test_bad_org_ids_are_refused(bad: str) -> None:
    with pytest.raises(PKIError, match="invalid organization id"):
        create_ca(bad, now=NOW)


def test_issue_refuses_wrong_org_bad_role_and_naive_time() -> None:
    ca, ca_key = create_ca("org1", now=NOW)
    with pytest.raises(PKIError, match="does not belong"):
        issue_identity(ca, ca_key, org="org2", name="x", role="client", now=NOW)
    with pytest.raises(PKIError, match="invalid role"):
        issue_identity(ca, ca_key, org="org1", name="x", role="boss", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(PKIError, match="timezone-aware"):
        issue_identity(ca, ca_key, org="org1", name="x", role="client", now=datetime(2030, 1, 1))
    with pytest.raises(PKIError, match="invalid host"):
        issue_identity(ca, ca_key, org="org1", name="x", role="server", hosts=["a b"], now=NOW)
    _, other_key = create_ca("org1", now=NOW)
    with pytest.raises(PKIError, match="does not match"):
        issue_identity(ca, other_key, org="org1", name="x", role="client", now=NOW)


# --- signatures ---------------------------------------------------------------------------


def test_signatures_are_always_low_s_and_verify() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    for i in range(300):  # about half of raw ECDSA signatures are high-S
        data = f"message {i}".encode()
        sig = sign(key, data)
        assert is_low_s(sig)
        verify_signature(key.public_key(), data, sig)


def _high_s_twin(sig: bytes) -> bytes:
    r, s = decode_dss_signature(sig)
    return encode_dss_signature(r, P256_ORDER - s)


def test_high_s_signature_is_refused_although_mathematically_valid() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    high = _high_s_twin(sign(key, b"data"))
    key.public_key().verify(high, b"data", ec.ECDSA(hashes.SHA256()))  # raw ECDSA accepts it
    with pytest.raises(SignatureError, match="high-S"):
        verify_signature(key.public_key(), b"data", high)


def test_bad_signatures_are_refused_as_certificate_errors() -> None:
    ca, ca_key = create_ca("org1", now=NOW)
    ident = issue_identity(ca, ca_key, org="org1", name="c", role="client", now=NOW)
    sig = ident.sign(b"data")
    verify_signature(ident.cert, b"data", sig)
    with pytest.raises(CertificateError, match="does not verify"):
        verify_signature(ident.cert, b"other", sig)
    with pytest.raises(CertificateError, match="does not verify"):
        verify_signature(ca, b"data", sig)
    with pytest.raises(CertificateError, match="not a valid DER"):
        verify_signature(ident.cert, b"data", b"\x30\x02garbage")
    with pytest.raises(CertificateError, match="DER"):
        verify_signature(ident.cert, b"data", sig + b"\x00")


def test_sign_needs_a_p256_key_and_identity_needs_a_key() -> None:
    with pytest.raises(PKIError, match="P-256"):
        sign(ec.generate_private_key(ec.SECP384R1()), b"x")
    ca, ca_key = create_ca("org1", now=NOW)
    ident = issue_identity(ca, ca_key, org="org1", name="c", role="client", now=NOW)
    public_only = type(ident)(ident.org, ident.name, ident.role, ident.cert, None)
    with pytest.raises(PKIError, match="no private key"):
        public_only.sign(b"x")
    with pytest.raises(PKIError, match="no private key"):
        public_only.key_pem()
    reloaded = serialization.load_pem_private_key(ident.key_pem(), password=None)
    assert reloaded.public_key() == ident.cert.public_key()


# --- Consortium.org_of --------------------------------------------------------------------


def _forge(
    subject_org: str, issuer: x509.Certificate, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    """A leaf claiming O=subject_org, naming ``issuer`` as issuer, signed by ``signer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "mallory"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject_org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
        ]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )


def test_org_of_accepts_every_consortium_identity(
    consortium_dir: Path, consortium: Consortium
) -> None:
    idents = list_identities(consortium_dir, consortium)
    assert {(i.org, i.name) for i in idents} >= {("org1", "aggregator"), ("org3", "client2")}
    for ident in idents:
        assert consortium.org_of(ident.cert) == ident.org


def test_org_of_refuses_unknown_ca(consortium: Consortium) -> None:
    evil_ca, evil_key = create_ca("evil", now=datetime.now(UTC))
    evil = issue_identity(
        evil_ca, evil_key, org="evil", name="c", role="client", now=datetime.now(UTC)
    )
    with pytest.raises(CertificateError, match="not a CA of consortium"):
        consortium.org_of(evil.cert)


def test_org_of_refuses_look_alike_ca(consortium: Consortium) -> None:
    # Same subject as org1's CA, different key: only the signature check tells them apart.
    fake_ca, fake_key = create_ca("org1", now=datetime.now(UTC))
    fake = issue_identity(
        fake_ca, fake_key, org="org1", name="c", role="client", now=datetime.now(UTC)
    )
    with pytest.raises(CertificateError, match="does not verify"):
        consortium.org_of(fake.cert)


def test_org_of_refuses_org_a_cert_from_org_b_ca(
    consortium_dir: Path, consortium: Consortium
) -> None:
    ca2, key2 = load_ca(consortium_dir, "org2")
    cert = _forge("org1", ca2, key2)  # claims org1, really issued by org2's CA
    with pytest.raises(CertificateError, match=r"claims organization \['org1'\].*'org2'"):
        consortium.org_of(cert)
    ca1 = consortium.cas["org1"]
    spoofed = _forge("org1", ca1, key2)  # names org1's CA as issuer, signed by org2's key
    with pytest.raises(CertificateError, match="does not verify"):
        consortium.org_of(spoofed)


def test_org_of_checks_validity_period() -> None:
    issued_at = datetime.now(UTC) - timedelta(days=3)
    ca, key = create_ca("org2", now=issued_at)
    cons = Consortium(name="c", aggregator="org2", cas={"org2": ca})
    old = issue_identity(
        ca, key, org="org2", name="old", role="client", now=issued_at, valid_days=1
    )
    with pytest.raises(CertificateError, match="expired"):
        cons.org_of(old.cert)
    assert cons.org_of(old.cert, now=issued_at) == "org2"
    with pytest.raises(CertificateError, match="not valid before"):
        cons.org_of(old.cert, now=issued_at - timedelta(days=1))
    young_ca, young_key = create_ca("org2", now=NOW)
    with pytest.raises(PKIError, match="outside"):
        issue_identity(
            young_ca,
            young_key,
            org="org2",
            name="x",
            role="client",
            now=NOW - timedelta(days=30),
            valid_days=1,
        )


def test_org_of_refuses_a_ca_certificate(consortium: Consortium) -> None:
    with pytest.raises(CertificateError, match="is a CA"):
        consortium.org_of(consortium.cas["org2"])


def test_consortium_bundle_and_fingerprints(consortium: Consortium) -> None:
    assert consortium.orgs == ("org1", "org2", "org3")
    assert consortium.aggregator == "org1"
    bundle = x509.load_pem_x509_certificates(consortium.tls_ca_bundle_pem())
    assert [fingerprint(c) for c in bundle] == list(consortium.tls_fingerprints().values())
    assert list(consortium.fingerprints()) == ["org1", "org2", "org3"]
    tls_shas = consortium.tls_fingerprints().values()
    assert set(consortium.fingerprints().values()).isdisjoint(tls_shas)
    with pytest.raises(PKIError, match="aggregator"):
        Consortium(name="x", aggregator="org9", cas=dict(consortium.cas))
    with pytest.raises(PKIError, match="another CA than its signing CA"):
        Consortium(name="x", aggregator="org1", cas=consortium.cas, tls_cas=consortium.cas)


def test_tls_and_signing_certificates_are_told_apart(
    consortium_dir: Path, consortium: Consortium
) -> None:
    member = load_identity(identity_dir(consortium_dir, "org2", "client1"))
    tls = member.tls_identity()
    assert (tls.org, tls.name, tls.role) == ("org2", "client1", "client")
    assert consortium.tls_org_of(tls.cert) == "org2"
    assert consortium.org_of(member.cert) == "org2"
    with pytest.raises(CertificateError, match="not a TLS CA"):
        consortium.tls_org_of(member.cert)  # a signing certificate is no TLS identity
    with pytest.raises(CertificateError, match="not a CA"):
        consortium.org_of(tls.cert)  # nor a TLS certificate a ledger signer


# --- on disk ------------------------------------------------------------------------------


def test_layout_and_key_modes(consortium_dir: Path) -> None:
    for org in ("org1", "org2", "org3"):
        msp = consortium_dir / org / "msp"
        assert load_cert(msp / "cacerts" / "ca.pem") == load_ca(consortium_dir, org)[0]
        tls_ca = load_ca(consortium_dir, org, kind="tlsca")[0]
        assert load_cert(msp / "tlscacerts" / "ca.pem") == tls_ca
        assert b"OrganizationalUnitIdentifier: client" in (msp / "config.yaml").read_bytes()
        assert not list(msp.rglob("*.key"))
        assert not (msp / "keystore").exists()
        assert stat.S_IMODE((consortium_dir / org / "ca").stat().st_mode) == 0o700
        for member in (consortium_dir / org / "users").iterdir():
            stem = "server" if member.name == "aggregator" else "client"
            assert load_cert(member / "tls" / "ca.crt") == tls_ca
            load_cert(member / "tls" / f"{stem}.crt").verify_directly_issued_by(tls_ca)
    keys = [*consortium_dir.rglob("*.key"), *consortium_dir.rglob("key.pem")]
    # signing and TLS CA per org; per member (admin + 2 clients per org, the aggregator) a
    # signing key and a TLS key
    assert len(keys) == 2 * 3 + 2 * (3 * 3 + 1)
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert not (consortium_dir / "org2" / "users" / "aggregator").exists()


def test_a_pki_made_by_the_old_single_ca_code_gets_a_reissue_hint(
    consortium_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(consortium_dir, old)
    doc = json.loads((old / "consortium.json").read_text())
    for entry in doc["orgs"]:
        del entry["tlsca_sha256"]
    (old / "consortium.json").write_text(json.dumps(doc))
    with pytest.raises(PKIError, match=r"older fedchain.*fedchain pki init --force"):
        load_consortium(old)


def test_a_signing_certificate_with_client_auth_only_gets_a_reissue_hint(tmp_path: Path) -> None:
    """What the old code issued, and Fabric refuses: a clear error, not a Fabric panic."""
    ca, ca_key = create_ca("org1", now=datetime.now(UTC))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, "client1"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org1"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
        ]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(minutes=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    msp = tmp_path / "client1" / "msp"
    (msp / "signcerts").mkdir(parents=True)
    (msp / "keystore").mkdir()
    (msp / "signcerts" / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (msp / "keystore" / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip
    with pytest.raises(PKIError, match=r"clientAuth only.*fedchain pki init --force"):
        load_identity(tmp_path / "client1")


def test_load_identity_from_folder_or_msp(consortium_dir: Path) -> None:
    folder = identity_dir(consortium_dir, "org1", "aggregator")
    a, b = load_identity(folder), load_identity(folder / "msp")
    assert a.fingerprint == b.fingerprint
    assert (a.org, a.name, a.role) == ("org1", "aggregator", "server")
    verify_signature(a.cert, b"x", b.sign(b"x"))


def test_consortium_json_is_checked_against_ca_files(consortium_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(consortium_dir, copy)
    other_ca, _ = create_ca("org2", now=datetime.now(UTC))
    (copy / "org2" / "msp" / "cacerts" / "ca.pem").write_bytes(
        other_ca.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(CertificateError, match="does not match the SHA-256"):
        load_consortium(copy)


def test_missing_files_name_the_path(consortium_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(IdentityNotFoundError, match=r"consortium\.json"):
        load_consortium(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(consortium_dir / "org1" / "users" / "client1", copy)
    (copy / "msp" / "keystore" / "key.pem").unlink()
    with pytest.raises(IdentityNotFoundError, match=r"keystore/key\.pem"):
        load_identity(copy)
    assert load_identity(copy, require_key=False).key is None
    with pytest.raises(IdentityNotFoundError, match="no identity at"):
        load_identity(tmp_path / "nowhere")


def test_no_silent_overwrite_and_force_moves_aside(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    first = init_consortium(out, consortium="c", orgs=["a"], aggregator="a", clients=0, now=NOW)
    ca_key = (out / "a" / "ca" / "ca.key").read_bytes()
    with pytest.raises(PKIError, match="refusing to overwrite"):
        init_consortium(out, consortium="c", orgs=["a"], aggregator="a", now=NOW)
    assert (out / "a" / "ca" / "ca.key").read_bytes() == ca_key
    second = init_consortium(out, consortium="c", orgs=["a"], aggregator="a", now=NOW, force=True)
    assert second.fingerprints() != first.fingerprints()
    backup = tmp_path / "pki.replaced-20300102T030405Z"
    assert (backup / "a" / "ca" / "ca.key").read_bytes() == ca_key
    assert load_consortium(backup).fingerprints() == first.fingerprints()
    assert load_consortium(out).fingerprints() == second.fingerprints()


def test_failed_init_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: the disk "fills up" after a few files have been written.
    from fedchain.pki.msp import write_file as real_write

    calls = {"n": 0}

    def failing_write(path: Path, data: bytes, *, private: bool = False) -> None:
        calls["n"] += 1
        if calls["n"] == 6:
            raise OSError(28, "No space left on device")
        real_write(path, data, private=private)

    monkeypatch.setattr("fedchain.pki.msp.write_file", failing_write)
    out = tmp_path / "pki"
    with pytest.raises(PKIError, match="No space left"):
        init_consortium(out, consortium="c", orgs=["a", "b"], aggregator="b")
    assert calls["n"] == 6
    assert list(tmp_path.iterdir()) == []  # neither OUT nor the staging folder remain


@pytest.mark.parametrize(
    ("orgs", "aggregator", "clients", "message"),
    [
        ([], "a", 1, "at least one"),
        (["a", "A"], "a", 1, "duplicate"),
        (["a", "b"], "c", 1, "aggregator 'c'"),
        (["a", "b c"], "a", 1, "invalid organization id"),
        (["a"], "a", -1, "clients"),
        (["a"], "a", 1, "invalid host"),
    ],
)
def test_init_validates_before_writing(
    tmp_path: Path, orgs: list[str], aggregator: str, clients: int, message: str
) -> None:
    with pytest.raises(PKIError, match=message):
        init_consortium(
            tmp_path / "pki",
            consortium="c",
            orgs=orgs,
            aggregator=aggregator,
            clients=clients,
            hosts=["bad host"] if message == "invalid host" else [],
        )
    assert not (tmp_path / "pki").exists()


def test_encrypted_keys_need_the_right_password(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    init_consortium(out, consortium="c", orgs=["a"], aggregator="a", password=b"s3cret")
    folder = identity_dir(out, "a", "client1")
    assert b"ENCRYPTED PRIVATE KEY" in (folder / "msp" / "keystore" / "key.pem").read_bytes()
    with pytest.raises(KeyPasswordError, match="no password"):
        load_identity(folder)
    with pytest.raises(KeyPasswordError, match="wrong password"):
        load_identity(folder, password=b"guess")
    ident = load_identity(folder, password=b"s3cret")
    verify_signature(ident.cert, b"m", ident.sign(b"m"))
    with pytest.raises(KeyPasswordError, match="wrong password"):
        load_ca(out, "a", password=b"guess")
    assert load_ca(out, "a", password=b"s3cret")[0] == load_consortium(out).cas["a"]


def test_password_for_an_unencrypted_key_is_refused(consortium_dir: Path) -> None:
    with pytest.raises(KeyPasswordError, match="not encrypted"):
        load_identity(identity_dir(consortium_dir, "org2", "admin"), password=b"pw")


# --- the certificates work for mutual TLS (in-memory handshake, no sockets) ---------------


def _handshake(client: ssl.SSLObject, server: ssl.SSLObject, bios: list[ssl.MemoryBIO]) -> None:
    """Pump TLS records between two in-memory endpoints until both finish the handshake."""
    c_in, c_out, s_in, s_out = bios
    done = {"client": False, "server": False}
    for _ in range(20):
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("TLS handshake did not finish")


@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1"])
def test_aggregator_and_client_certs_do_mutual_tls(
    consortium_dir: Path, consortium: Consortium, tmp_path: Path, server_name: str
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(consortium.tls_ca_bundle_pem())
    agg = identity_dir(consortium_dir, "org1", "aggregator") / "tls"
    org2 = identity_dir(consortium_dir, "org2", "client1") / "tls"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(agg / "server.crt", agg / "server.key")
    server_ctx.load_verify_locations(bundle)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(bundle))
    client_ctx.load_cert_chain(org2 / "client.crt", org2 / "client.key")
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(bios[0], bios[1], server_hostname=server_name)
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    _handshake(client, server, bios)
    peer = server.getpeercert(binary_form=True)
    assert peer is not None
    assert consortium.tls_org_of(x509.load_der_x509_certificate(peer)) == "org2"


def test_signing_certificate_cannot_serve_tls(
    consortium_dir: Path, consortium: Consortium, tmp_path: Path
) -> None:
    """The aggregator's own signing certificate (no EKU) chains to no CA that TLS trusts."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(consortium.tls_ca_bundle_pem())
    msp = identity_dir(consortium_dir, "org1", "aggregator") / "msp"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(msp / "signcerts/cert.pem", msp / "keystore/key.pem")
    client_ctx = ssl.create_default_context(cafile=str(bundle))
    client_ctx.check_hostname = False
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(bios[0], bios[1])
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(client, server, bios)


def test_client_certificate_cannot_serve_tls(
    consortium_dir: Path, consortium: Consortium, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(consortium.tls_ca_bundle_pem())
    tls = identity_dir(consortium_dir, "org2", "client1") / "tls"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tls / "client.crt", tls / "client.key")
    client_ctx = ssl.create_default_context(cafile=str(bundle))
    client_ctx.check_hostname = False  # isolate the EKU check from the (absent) SANs
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(bios[0], bios[1])
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    with pytest.raises(ssl.SSLCertVerificationError, match="unsuitable certificate purpose"):
        _handshake(client, server, bios)
