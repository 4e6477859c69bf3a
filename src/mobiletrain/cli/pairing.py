"""Pairing a phone with ``mobiletrain serve --lan``: LAN address, pinned certificate, QR code.

A phone cannot reach ``127.0.0.1`` and has no way to trust a private CA, so ``serve --lan``
serves TLS from a self-signed certificate it creates once in ``DATA_DIR/tls/`` and puts the
certificate's sha256 fingerprint into the QR code. The Dart client trusts exactly that certificate
(``ConnectionSettings.certSha256``), which is as safe as a CA for a server paired by scanning.

The QR code holds JSON, the format the Dart example app's ``ConnectionPayload.parse`` reads::

    {"server": "https://192.168.1.20:8000", "grpc_port": 50051, "tls": true,
     "cert_sha256": "5f0c...64 hex digits"}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import ipaddress
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
_VALID_DAYS = 825  # the longest lifetime Apple's TLS rules accept for a server certificate


def lan_address() -> str | None:
    """This machine's IPv4 address on its local network, or None when it has none.

    Asks the routing table which source address reaches a private network (no packet is sent:
    connecting a UDP socket only chooses the route), then falls back to the host name's addresses.
    """
    for probe in ("192.168.255.255", "10.255.255.255", "172.31.255.255"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                address = str(s.getsockname()[0])
        except OSError:
            continue
        if _reachable(address):
            return address
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    for info in infos:
        address = str(info[4][0])
        if _reachable(address):
            return address
    return None


def _reachable(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_unspecified or ip.is_link_local)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``127.x``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cert_sha256(cert_pem: bytes) -> str:
    """Lower-case hex sha256 of the certificate's DER bytes (what a pinning client compares)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def ensure_certificate(tls_dir: Path, addresses: list[str]) -> tuple[Path, Path, bool]:
    """(cert, key, created): the self-signed certificate in ``tls_dir``, made when missing.

    An existing certificate is kept while it names every address and is valid for 30 more days, so
    a paired phone stays paired across restarts; otherwise a new one is made (pair again).
    """
    from cryptography import x509

    cert_path, key_path = tls_dir / CERT_NAME, tls_dir / KEY_NAME
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            named = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        except x509.ExtensionNotFound:
            named = set()
        fresh = cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        if fresh and set(addresses) <= named:
            return cert_path, key_path, False
    _write_certificate(tls_dir, addresses)
    return cert_path, key_path, True


def _write_certificate(tls_dir: Path, addresses: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mobiletrain")])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(addresses)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first, owner-only, each via a temporary name so a crash never leaves half a file.
    for path, data, mode in (
        (tls_dir / KEY_NAME, key_pem, 0o600),
        (tls_dir / CERT_NAME, cert.public_bytes(serialization.Encoding.PEM), 0o644),
    ):
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


@dataclass(frozen=True)
class PairingInfo:
    """What a phone needs to connect: address, ports and the pinned certificate."""

    host: str
    http_port: int
    grpc_port: int
    cert_sha256: str = ""

    @property
    def tls(self) -> bool:
        """True when the server speaks TLS (a fingerprint is pinned)."""
        return bool(self.cert_sha256)

    def payload(self) -> str:
        """The QR code's text: JSON the Dart ``ConnectionPayload.parse`` accepts."""
        scheme = "https" if self.tls else "http"
        data: dict[str, object] = {
            "server": f"{scheme}://{self.host}:{self.http_port}",
            "grpc_port": self.grpc_port,
            "tls": self.tls,
        }
        if self.cert_sha256:
            data["cert_sha256"] = self.cert_sha256
        return json.dumps(data, separators=(",", ":"))


def qr_terminal(text: str) -> str:
    """The QR code of ``text`` drawn with block characters for a terminal."""
    import segno

    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def qr_png(text: str, path: Path, scale: int = 8) -> None:
    """Write the QR code of ``text`` as a PNG (for a screen that shows the terminal badly)."""
    import segno

    segno.make(text, error="m").save(str(path), kind="png", scale=scale)
