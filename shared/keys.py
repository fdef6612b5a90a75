"""JWT signing keys: the dev key pair, rotation, the public JWKS, and token signing.

Keys are PEM files in one folder, named `<created>-<kid>.pem`; the newest signs, all verify, so a rotation keeps
tokens signed by the previous key valid until they expire. The kid is the RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_pem: str
    public_jwk: dict[str, Any]


def _public_jwk(private_pem: str, algorithm: str) -> dict[str, Any]:
    public_pem = (
        serialization.load_pem_private_key(private_pem.encode(), password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    data = jwk.construct(public_pem, algorithm).to_dict()
    data = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in data.items()}
    required = ("crv", "kty", "x", "y") if data["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: data[k] for k in required}, separators=(",", ":"), sort_keys=True)
    data["kid"] = _b64(hashlib.sha256(canonical.encode()).digest())
    data["alg"] = algorithm
    data["use"] = "sig"
    return data


def generate_key(keys_dir: Path, algorithm: str = "ES256") -> SigningKey:
    """Make a new key pair in `keys_dir`; it becomes the signing key."""
    if algorithm == "ES256":
        private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unsupported algorithm {algorithm}")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = _public_jwk(pem, algorithm)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)  # private keys and the audit secret: the owner only
    path = keys_dir / f"{time.time_ns()}-{algorithm}-{public['kid']}.pem"
    # Private keys are readable by their owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pem)
    return SigningKey(public["kid"], algorithm, pem, public)


def load_keys(keys_dir: Path) -> list[SigningKey]:
    """All keys in the folder, newest first."""
    if not keys_dir.is_dir():
        return []
    out = []
    for path in sorted(keys_dir.glob("*.pem"), reverse=True):
        _, algorithm, _ = path.stem.split("-", 2)
        pem = path.read_text()
        public = _public_jwk(pem, algorithm)
        out.append(SigningKey(public["kid"], algorithm, pem, public))
    return out


def ensure_signing_key(keys_dir: Path, algorithm: str = "ES256") -> SigningKey:
    """The current signing key, made on first run."""
    keys = load_keys(keys_dir)
    return keys[0] if keys else generate_key(keys_dir, algorithm)


def public_jwks(keys_dir: Path) -> dict[str, Any]:
    return {"keys": [k.public_jwk for k in load_keys(keys_dir)]}


def sign_token(
    key: SigningKey,
    *,
    subject: str,
    audience: str,
    issuer: str,
    ttl_s: int,
    claims: dict[str, Any] | None = None,
    now: float | None = None,
) -> str:
    exact = now if now is not None else time.time()
    issued = int(exact)
    payload = {
        **(claims or {}),
        "sub": subject,
        "aud": audience,
        "iss": issuer,
        # To the millisecond (RFC 7519 allows fractions): a revocation "every token before t" then spares a token
        # issued in the same second after it (a rotated client secret's first token).
        "iat": round(exact, 3),
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    token: str = jwt.encode(payload, key.private_pem, algorithm=key.algorithm, headers={"kid": key.kid})
    return token
