"""TLS to the BCA is always verified: an untrusted certificate is refused; the CA file configured is trusted."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.hotlist.main import create_app
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, generated
from tests.support.apps import running


def _self_signed(folder: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bca.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def tls_bca(tmp_path: Path) -> Iterator[FakeBca]:
    server = FakeBca(tls=_self_signed(tmp_path))
    server.start()
    yield server
    server.stop()


async def test_untrusted_certificate_is_refused_and_the_configured_ca_trusted(
    hl_settings: Settings,
    tls_bca: FakeBca,
    tokens,  # type: ignore[no-untyped-def]
) -> None:
    tls_bca.publish(extract(generated(5, prefix="TL", seed=41)))
    untrusted = hl_settings.model_copy(update={"hotlist_source_url": tls_bca.url})
    async with running(create_app(untrusted)) as client:
        refused = await client.post("/v1/hotlist/sync", headers=tokens("admin"))
        assert refused.status_code == 503
        assert refused.json()["detail"]["message"] == "source's TLS certificate is not trusted"
    assert tls_bca.requests == []  # nothing was sent, credentials included

    trusted = untrusted.model_copy(update={"hotlist_source_ca_file": Path(tls_bca.tls[0])})  # type: ignore[index]
    async with running(create_app(trusted)) as client:
        loaded = await client.post("/v1/hotlist/sync", headers=tokens("admin"))
        assert loaded.status_code == 200 and loaded.json()["outcome"] == "loaded", loaded.text
