"""The mesh PKI: a mesh CA, node certificates bound to ed25519 identities, revocation, verification.

A node certificate's public key *is* the node's ed25519 identity key (the one that signs its
gossip), so the certificate binds the identity without an extension of our own, and aioquic can
use the same key for TLS 1.3. The CA is an ed25519 key too; revocation is an X.509 CRL the CA signs.
Files (all PEM): `ca.key` (0600), `ca.pem`, `crl.pem`; a node's `NAME.key` (0600) and `NAME.pem`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from nacl.signing import SigningKey

from knhk_mesh.core.messages import Rotation
from knhk_mesh.core.security import Identity

# Every node certificate names this DNS name: clients verify the server against it and the mesh CA
# (node addresses are loopback or change; identity is the key, not the name).
MESH_SERVER_NAME = "knhk-mesh"
CA_KEY, CA_CERT, CA_CRL = "ca.key", "ca.pem", "crl.pem"
DEFAULT_CA_DAYS = 3650
DEFAULT_NODE_DAYS = 30  # the seed rotates node credentials every 24 h; renewal keeps the identity key


class PkiError(Exception):
    """A PKI file is missing or unusable; the message names the file."""


class Refusal(StrEnum):
    """Why a peer certificate is refused; values are the schema's rejection reasons."""

    UNTRUSTED = "untrusted_certificate"
    EXPIRED = "expired_certificate"
    REVOKED = "revoked_certificate"


class CertificateRefused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise PkiError(f"{path}: no such key file") from None
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise PkiError(f"{path}: not an ed25519 key")
    return key


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise PkiError(f"{path}: no such certificate file") from None
    except ValueError as exc:
        raise PkiError(f"{path}: not a PEM certificate ({exc})") from None


def signing_key_of(key: ed25519.Ed25519PrivateKey) -> SigningKey:
    """The PyNaCl key behind a cryptography ed25519 key: same seed, same public key."""
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return SigningKey(seed)


def identity_of(key: ed25519.Ed25519PrivateKey) -> Identity:
    """The mesh identity whose genesis key is `key`."""
    return Identity(signing_key_of(key))


def public_key_bytes(cert: x509.Certificate) -> bytes:
    """The raw ed25519 public key of a certificate (a node's identity key)."""
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise CertificateRefused(Refusal.UNTRUSTED, "the certificate's key is not ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(cert_der: bytes) -> bytes:
    return hashlib.sha256(cert_der).digest()


def init_ca(folder: Path, *, name: str = "knhk-mesh CA", days: int = DEFAULT_CA_DAYS) -> Path:
    """Create the mesh CA (key, self-signed certificate, empty CRL) in `folder`; never overwrites."""
    if (folder / CA_KEY).exists():
        raise PkiError(f"{folder / CA_KEY}: a mesh CA already exists here (remove it to start over)")
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, None)
    )
    _write_private(folder / CA_KEY, _key_pem(key))
    (folder / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_crl(folder, key, cert, [])
    return folder / CA_CERT


def _load_ca(folder: Path) -> tuple[ed25519.Ed25519PrivateKey, x509.Certificate]:
    return load_private_key(folder / CA_KEY), load_certificate(folder / CA_CERT)


@dataclass(frozen=True)
class Issued:
    key_path: Path
    cert_path: Path
    agent_id: str
    serial: int
    new_key: bool


def issue_node(
    ca_folder: Path,
    name: str,
    out_folder: Path,
    *,
    days: int = DEFAULT_NODE_DAYS,
    key_path: Path | None = None,
) -> Issued:
    """Issue (or renew) `name`'s node certificate, bound to its ed25519 identity key.

    The key is `key_path` if given, else `out_folder/NAME.key` if it exists (renewal keeps the
    identity), else a new one.
    """
    if not name or "/" in name or name.startswith("."):
        raise PkiError(f"{name!r} is not a usable node name (a file name without '/')")
    if days < 1:
        raise PkiError(f"--days {days}: a certificate must be valid for at least one day")
    ca_key, ca_cert = _load_ca(ca_folder)
    key_file = key_path or out_folder / f"{name}.key"
    new_key = not key_file.exists()
    if new_key:
        key = ed25519.Ed25519PrivateKey.generate()
        _write_private(key_file, _key_pem(key))
    else:
        key = load_private_key(key_file)
    identity = identity_of(key)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(MESH_SERVER_NAME), x509.DNSName(f"{identity.hex_id}.{MESH_SERVER_NAME}")]
            ),
            critical=False,
        )
        .sign(ca_key, None)
    )
    cert_file = out_folder / f"{name}.pem"
    out_folder.mkdir(parents=True, exist_ok=True)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(key_file, cert_file, identity.hex_id, cert.serial_number, new_key)


def _write_crl(
    folder: Path, ca_key: ed25519.Ed25519PrivateKey, ca_cert: x509.Certificate, serials: list[int]
) -> None:
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=DEFAULT_CA_DAYS))
    )
    for serial in sorted(set(serials)):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = builder.sign(ca_key, None)
    tmp = folder / (CA_CRL + ".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(folder / CA_CRL)  # readers never see half a CRL


def revoke(ca_folder: Path, cert_path: Path) -> int:
    """Add a node certificate to the CA's revocation list; returns its serial."""
    ca_key, ca_cert = _load_ca(ca_folder)
    cert = load_certificate(cert_path)
    if cert.issuer != ca_cert.subject:
        raise PkiError(f"{cert_path}: not issued by the mesh CA in {ca_folder}")
    crl = load_crl(ca_folder / CA_CRL, ca_cert)
    serials = [r.serial_number for r in crl] if crl is not None else []
    _write_crl(ca_folder, ca_key, ca_cert, [*serials, cert.serial_number])
    return cert.serial_number


def load_crl(path: Path, ca_cert: x509.Certificate) -> x509.CertificateRevocationList | None:
    """The CA's CRL, its signature checked; None when there is no CRL file."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise PkiError(f"{path}: not a PEM CRL ({exc})") from None
    ca_key = ca_cert.public_key()
    if not isinstance(ca_key, ed25519.Ed25519PublicKey) or not crl.is_signature_valid(ca_key):
        raise PkiError(f"{path}: the CRL is not signed by the mesh CA")
    return crl


@dataclass(frozen=True)
class PkiPaths:
    """Where a node finds its credentials; every file is re-read when it changes."""

    ca_cert: Path
    node_cert: Path
    node_key: Path
    crl: Path | None = None


class Credentials:
    """A node's CA, certificate, key and CRL, reloaded without a restart when a file changes."""

    def __init__(self, paths: PkiPaths) -> None:
        self.paths = paths
        self._stamp: tuple[float, ...] = ()
        self.ca_cert: x509.Certificate
        self.ca_pem: bytes
        self.node_cert: x509.Certificate
        self.node_cert_der: bytes
        self.node_key: ed25519.Ed25519PrivateKey
        self.identity: Identity
        self.crl: x509.CertificateRevocationList | None = None
        self.generation = 0
        self.reload_if_changed()

    def _stamps(self) -> tuple[float, ...]:
        files = [self.paths.ca_cert, self.paths.node_cert, self.paths.node_key]
        if self.paths.crl is not None:
            files.append(self.paths.crl)
        return tuple(f.stat().st_mtime_ns if f.exists() else -1.0 for f in files)

    def reload_if_changed(self) -> bool:
        """Re-read the files if any changed; a broken new set keeps the old one (and raises)."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return False
        ca_pem = self.paths.ca_cert.read_bytes() if self.paths.ca_cert.exists() else b""
        ca_cert = load_certificate(self.paths.ca_cert)
        node_cert = load_certificate(self.paths.node_cert)
        node_key = load_private_key(self.paths.node_key)
        crl = load_crl(self.paths.crl, ca_cert) if self.paths.crl is not None else None
        if public_key_bytes(node_cert) != identity_of(node_key).public_key:
            raise PkiError(f"{self.paths.node_cert}: certificate is not for the key in {self.paths.node_key}")
        identity = identity_of(node_key)
        if hasattr(self, "identity") and identity.public_key != self.identity.public_key:
            if identity.public_key in self.identity.keys:
                epoch = self.identity.keys.index(identity.public_key)
                raise PkiError(
                    f"{self.paths.node_key}: the node's key of epoch {epoch}, retired by a later rotation "
                    f"(now at epoch {self.identity.epoch}): key epochs only move forward, issue a new key"
                )
            # a key rotation: the new key is covered by the new certificate (checked above) and
            # the rotation is signed by the key in use until now, so the agent id stays
            identity = self.identity.rotate(signing_key_of(node_key))
        self.ca_cert, self.ca_pem, self.crl = ca_cert, ca_pem, crl
        self.node_cert, self.node_key, self.identity = node_cert, node_key, identity
        self.node_cert_der = node_cert.public_bytes(serialization.Encoding.DER)
        self._stamp = stamp
        self.generation += 1
        return True

    @property
    def revoked_count(self) -> int:
        """Certificates on the CRL in use (so an operator, or a test, sees that a CRL was taken)."""
        return 0 if self.crl is None else len(self.crl)

    def adopt_chain(self, genesis_key: bytes, rotations: tuple[Rotation, ...]) -> None:
        """Resume an identity that rotated before a restart: the key file holds its newest key."""
        if not rotations or rotations[-1].public_key != self.identity.public_key:
            raise PkiError(f"{self.paths.node_key}: not the newest key of the node's recorded key chain")
        key = signing_key_of(self.node_key)
        self.identity = Identity(key, genesis_key=genesis_key, rotations=rotations)

    def check_own(self) -> None:
        """Refuse to run on an own certificate that peers would refuse."""
        try:
            self.verify_peer(self.node_cert_der)
        except CertificateRefused as exc:
            raise PkiError(f"{self.paths.node_cert}: own certificate refused: {exc}") from None

    def verify_peer(self, cert_der: bytes) -> bytes:
        """Check a peer's node certificate; returns its ed25519 identity key or raises CertificateRefused."""
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError as exc:
            raise CertificateRefused(Refusal.UNTRUSTED, f"certificate does not parse ({exc})") from None
        if cert.issuer != self.ca_cert.subject:
            raise CertificateRefused(Refusal.UNTRUSTED, f"issued by {cert.issuer.rfc4514_string()!r}")
        try:
            cert.verify_directly_issued_by(self.ca_cert)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise CertificateRefused(
                Refusal.UNTRUSTED, f"not signed by the mesh CA ({exc or 'bad signature'})"
            ) from None
        now = _now()
        if now < cert.not_valid_before_utc:
            raise CertificateRefused(
                Refusal.EXPIRED, f"not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
            )
        if now > cert.not_valid_after_utc:
            raise CertificateRefused(
                Refusal.EXPIRED, f"expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
            )
        if self.crl is not None and self.crl.get_revoked_certificate_by_serial_number(cert.serial_number):
            raise CertificateRefused(Refusal.REVOKED, f"serial {cert.serial_number:x} is revoked")
        return public_key_bytes(cert)


def random_nonce() -> bytes:
    return secrets.token_bytes(32)
