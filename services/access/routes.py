"""Routes of the access service."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from shared.keys import public_jwks

router = APIRouter()


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify our tokens")
async def jwks(request: Request) -> dict[str, Any]:
    # Read per request: a rotated key is served without a restart (verifiers cache it).
    keys: dict[str, Any] = await asyncio.to_thread(public_jwks, request.app.state.settings.keys_dir)
    return keys
