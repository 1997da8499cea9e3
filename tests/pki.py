"""A throwaway PKI for tests and benchmarks: a CA, server and client certificates."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    ca: bytes
    server_cert: Path
    server_key: Path
    ca_path: Path
    client_cert: bytes
    client_key: bytes
    rogue_cert: bytes
    rogue_key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(
            issuer.subject
            if issuer
            else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        )
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path) -> Pki:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate from the CA
    and one from another CA, written (server side) into ``folder``."""
    ca_key, rogue_ca_key = _key(), _key()
    ca = _cert("triage test CA", ca_key, None, ca_key, ca=True)
    rogue_ca = _cert("someone else's CA", rogue_ca_key, None, rogue_ca_key, ca=True)
    server_key = _key()
    server = _cert(
        "localhost",
        server_key,
        ca,
        ca_key,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key, rogue_key = _key(), _key()
    client = _cert("call-centre-1", client_key, ca, ca_key)
    rogue = _cert("intruder", rogue_key, rogue_ca, rogue_ca_key)
    pem = serialization.Encoding.PEM
    (folder / "server.pem").write_bytes(server.public_bytes(pem))
    (folder / "server.key").write_bytes(_pem_key(server_key))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    return Pki(
        ca.public_bytes(pem),
        folder / "server.pem",
        folder / "server.key",
        folder / "ca.pem",
        client.public_bytes(pem),
        _pem_key(client_key),
        rogue.public_bytes(pem),
        _pem_key(rogue_key),
    )
