"""Fetching the hot list from the BCA: conditional requests, TLS verified, credentials in a header, retries with
back-off, a size limit on what is downloaded and on what it decompresses to, gzip and zip bodies accepted."""

from __future__ import annotations

import asyncio
import gzip
import io
import ssl
import zipfile
import zlib
from dataclasses import dataclass

import httpx
import structlog

from shared.settings import Settings

log = structlog.get_logger(__name__)


class FetchError(Exception):
    """The source could not give us a list (down, timing out, refusing, too big, not decompressible)."""


@dataclass
class Fetched:
    body: bytes | None  # None: not modified since the validators we sent
    etag: str | None
    last_modified: str | None


def _gunzip(data: bytes, limit: int) -> bytes:
    out = io.BytesIO()
    while data:
        d = zlib.decompressobj(wbits=31)
        while True:
            chunk = d.decompress(data, max(1, limit + 1 - out.tell()))
            out.write(chunk)
            if out.tell() > limit:
                raise FetchError(f"list decompresses to more than {limit} bytes")
            if d.eof:
                break
            if not d.unconsumed_tail:
                raise FetchError("compressed body is corrupt: truncated gzip stream")
            data = d.unconsumed_tail
        data = d.unused_data  # a multi-member gzip file goes on
    return out.getvalue()


def decompress(data: bytes, limit: int) -> bytes:
    """gzip or zip (one member) bodies to the text they hold; plain text as is. CPU-bound: call in a thread."""
    try:
        if data[:2] == b"\x1f\x8b":
            return _gunzip(data, limit)
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise FetchError(f"zip archive must hold one file, holds {len(members)}")
                if members[0].file_size > limit:
                    raise FetchError(f"list decompresses to more than {limit} bytes")
                with archive.open(members[0]) as fh:
                    body = fh.read(limit + 1)
                if len(body) > limit:
                    raise FetchError(f"list decompresses to more than {limit} bytes")
                return body
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, gzip.BadGzipFile) as exc:
        raise FetchError(f"compressed body is corrupt: {exc}") from None
    return data


class BcaClient:
    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.hotlist_source_url:
            raise FetchError("no hot-list source configured (ALPR_HOTLIST_SOURCE_URL)")
        self.url = settings.hotlist_source_url
        self.settings = settings
        self.transport = transport

    def _headers(self, etag: str | None, last_modified: str | None) -> dict[str, str]:
        headers = {"Accept-Encoding": "gzip"}
        credential = self.settings.hotlist_source_credential
        if credential is not None:
            headers[self.settings.hotlist_source_header] = credential.get_secret_value()
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return headers

    async def _once(self, client: httpx.AsyncClient, headers: dict[str, str]) -> Fetched:
        limit = self.settings.hotlist_max_bytes
        async with client.stream("GET", self.url, headers=headers) as resp:
            if resp.status_code == 304:
                return Fetched(None, resp.headers.get("etag"), resp.headers.get("last-modified"))
            if resp.status_code != 200:
                raise httpx.HTTPStatusError(f"source answered {resp.status_code}", request=resp.request, response=resp)
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(f"list is {declared} bytes, above the limit of {limit}")
            buf = bytearray()
            # aiter_bytes undoes a Content-Encoding: the limit holds for what it inflates to, too.
            async for chunk in resp.aiter_bytes():
                buf += chunk
                if len(buf) > limit:
                    raise FetchError(f"list is larger than the limit of {limit} bytes")
            # h11 refuses a body shorter than its Content-Length; this says so in the sync's own words if not.
            if declared and declared.isdigit() and resp.num_bytes_downloaded != int(declared):
                raise FetchError(f"incomplete download: {resp.num_bytes_downloaded} of {declared} declared bytes")
            body = await asyncio.to_thread(decompress, bytes(buf), limit)
            return Fetched(body, resp.headers.get("etag"), resp.headers.get("last-modified"))

    async def fetch(self, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        s = self.settings
        headers = self._headers(etag, last_modified)
        timeout = httpx.Timeout(s.hotlist_source_timeout_s)
        last_error = "no attempt"
        # TLS is always verified: against the system's trust store, or the CA file the BCA's certificate chains to.
        verify: ssl.SSLContext | bool = True
        if s.hotlist_source_ca_file is not None:
            verify = ssl.create_default_context(cafile=str(s.hotlist_source_ca_file))
        async with httpx.AsyncClient(timeout=timeout, verify=verify, transport=self.transport) as client:
            for attempt in range(s.hotlist_source_retries + 1):
                if attempt:
                    await asyncio.sleep(s.hotlist_source_backoff_s * 2 ** (attempt - 1))
                try:
                    return await self._once(client, headers)
                except httpx.HTTPStatusError as exc:
                    code = exc.response.status_code
                    last_error = f"source answered {code}"
                    if code < 500 and code not in (408, 429):
                        break  # refused (credentials, path): retrying will not help
                except httpx.TimeoutException:
                    last_error = "source timed out"
                except httpx.RemoteProtocolError:
                    last_error = "source closed the connection before the end of the file (incomplete download)"
                except httpx.HTTPError as exc:
                    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                        last_error = "source's TLS certificate is not trusted"
                        break  # retrying will not make it trusted
                    last_error = f"source unreachable: {type(exc).__name__}"
                log.warning("hotlist_fetch_retry", attempt=attempt + 1, error=last_error)
        raise FetchError(last_error)
