"""Test set-up: a real PostgreSQL (migrated) and a real S3 server, started here when the machine lacks them."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alpr.roles import prepare_database
from shared.keys import SigningKey, ensure_signing_key, generate_key, sign_token
from shared.settings import Settings
from tests.support.pg import create_test_database, drop_database, server_url
from tests.support.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, WeedS3


@contextlib.contextmanager
def _private_dir(prefix: str) -> Iterator[Path]:
    """A folder of this run's own for a server's data. Not under pytest's shared basetemp: a concurrent pytest run
    prunes older basetemps and would delete a server's files under it mid-run."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _data_dir_of_its_own() -> Iterator[None]:
    """Never the checkout's ./var: `make run` keeps a running system's keys and saved settings there, and a test
    that reads settings from the environment (the CLI's) would pick them up."""
    with _private_dir("alpr-test-data-") as path, pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALPR_DATA_DIR", str(path))
        yield


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A folder for a PostgreSQL a test starts and stops itself. Not under pytest's basetemp: its server runs as
    another user, and a pytest session started meanwhile resets the basetemp's root to 0700 (or prunes it)."""
    with _private_dir("alpr-test-own-pg-") as path:
        yield path / "pg"


# The services' database roles in tests (the server trusts local connections; a password is set all the same).
TEST_ROLE_PASSWORDS = {"access": "t-access", "ingest": "t-ingest", "recognition": "t-recognition", "hotlist": "t-hl"}


@pytest.fixture(scope="session")
def pg_maintenance_url() -> Iterator[str]:
    with _private_dir("alpr-test-pg-") as path:
        url, server = server_url(path)
        yield url
        if server is not None:
            server.cleanup()


@pytest.fixture(scope="session")
def database_url(pg_maintenance_url: str) -> Iterator[str]:
    url = create_test_database(pg_maintenance_url)
    # As `alpr up` does: the services' roles, then the migrations as the owner role.
    prepare_database(url, TEST_ROLE_PASSWORDS)
    yield url
    drop_database(pg_maintenance_url, url)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[WeedS3]:
    with _private_dir("alpr-test-weed-") as path:
        server = WeedS3(path)
        server.start()
        yield server
        server.stop()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys")
    ensure_signing_key(path, "ES256")
    return path


@pytest.fixture(scope="session")
def signing_key(keys_dir: Path) -> SigningKey:
    return ensure_signing_key(keys_dir)


def make_settings(data_dir: Path, database_url: str, keys_dir: Path, s3: WeedS3 | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "database_url": database_url,
        "jwt_keys_dir": keys_dir,
        "log_json": True,
        "log_level": "WARNING",
        # The scheduled purge would destroy other tests' generated data: the retention tests run it themselves.
        "retention_purge_scheduled": False,
        # Checkpoints go to the shared test bucket: the audit tests publish their own, on their own database.
        "audit_checkpoint_scheduled": False,
        # The session's one database sees hot lists of every size, one test after another: the guard against a list
        # that shrinks is tested on its own (tests/hotlist/test_sync_complete.py).
        "hotlist_max_drop_share": 1.0,
    }
    if s3 is not None:
        values.update(s3_endpoint=s3.endpoint, s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY, s3_bucket=BUCKET)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, keys_dir: Path, s3_server: WeedS3
) -> Settings:
    """Settings of a deployment on real PostgreSQL and S3."""
    return make_settings(tmp_path_factory.mktemp("data"), database_url, keys_dir, s3_server)


@pytest.fixture(scope="session")
def local_settings(tmp_path_factory: pytest.TempPathFactory, database_url: str, keys_dir: Path) -> Settings:
    """Settings of the one-command default: the local-folder object store."""
    return make_settings(tmp_path_factory.mktemp("data-local"), database_url, keys_dir, None)


TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def make_token(signing_key: SigningKey) -> TokenFactory:
    """Sign a token the way the access service does (tests of other services need callers with roles)."""

    def _make(
        *,
        subject: str = "user-1",
        roles: list[str] | None = None,
        ttl_s: int = 600,
        key: SigningKey | None = None,
        audience: str = "alpr",
        issuer: str = "alpr-access",
        **claims: Any,
    ) -> str:
        # People who operate ALPR are trained unless a test says otherwise (`trained_until=None`: no record).
        if set(roles or ["officer"]) & {"officer", "supervisor"} and "trained_until" not in claims:
            claims["trained_until"] = int(time.time()) + 86400
        if claims.get("trained_until", 0) is None:
            del claims["trained_until"]
        # A service token is one service's (shared/service_callers.py): hotlist's for `svc-hotlist`, access's own
        # for `service:access`, else ingest's (the caller of most internal routes); `service=None`: no identity.
        if "service" in (roles or []) and "service" not in claims and subject != "service:access":
            claims["service"] = "hotlist" if subject == "svc-hotlist" else "ingest"
        if "service" in claims and claims["service"] is None:
            del claims["service"]
        return sign_token(
            key or signing_key,
            subject=subject,
            audience=audience,
            issuer=issuer,
            ttl_s=ttl_s,
            claims={"roles": roles if roles is not None else ["officer"], **claims},
        )

    return _make


@pytest.fixture(scope="session")
def foreign_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    """A key the services do not trust."""
    return generate_key(tmp_path_factory.mktemp("foreign-keys"), "ES256")
