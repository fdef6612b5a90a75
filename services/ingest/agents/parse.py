"""Lenient parsing of what OpenALPR and Rekor agents post, and the mapping to our reads.

Lenient because the agents are not ours to change: duplicate keys (every `alprd` body repeats `img_width` and
`img_height`: the last wins), 0/1 or booleans, an empty `site_id`, unknown and missing optional fields, epoch
milliseconds. Strict where the statute is: only plate, time, location and pictures leave this module; vehicle make,
model, colour, body type, year, orientation and direction are dropped here and only counted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog

from services.ingest.agents.spool import SpoolRecord
from services.ingest.images import CheckedImage, check_image
from shared import plates
from shared.bounds import MAX_IMAGE_PIXELS
from shared.errors import AppError

log = structlog.get_logger(__name__)

DATA_TYPES = ("alpr_results", "alpr_group", "alpr_alert", "heartbeat")
# Fields 13.824 subd. 2(a) does not let us keep (make, model, colour, body type, direction and their kin).
DISALLOWED = (
    "vehicle",
    "vehicles",
    "travel_direction",
    "direction_of_travel_id",
    "vehicle_signature",
    "is_parked",
    "make",
    "model",
    "make_model",
    "color",
    "body_type",
    "year",
    "orientation",
)
_DISALLOWED = frozenset(DISALLOWED)
_CONTAINERS = (dict, list)
_STATE = re.compile(r"^(?:us-)?([a-z]{2})$")
MAX_CANDIDATES = 10
MAX_CROP_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 32  # the agents' bodies nest 4 deep; anything far deeper is not theirs
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31: beyond it no time can be stored (farther bounds come later)


class Malformed(Exception):
    """The body cannot become a read: kept in quarantine with this reason."""


@dataclass
class PlateRead:
    keys: list[str]
    best_key: str
    epoch_ms: int
    plate: str
    confidence: float | None  # 0-100, as the agent said
    corners: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    state: str | None
    camera: str
    lat: float | None
    lon: float | None
    plate_crop: CheckedImage | None
    vehicle_crop: CheckedImage | None
    is_preview: bool
    source: str


@dataclass
class ParsedPost:
    data_type: str
    epoch_ms: int | None
    reads: list[PlateRead] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # what was skipped, for the log


def loads(raw: bytes) -> Any:
    """JSON with duplicate keys allowed (the last one wins, as in the agents' own parser; json's own dicts do that
    without a hook called per object)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON: {exc}") from None
    except RecursionError:
        raise Malformed("JSON nested too deep") from None


def flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def epoch_ms(value: Any) -> int | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    number = _number(value)
    if number is None or number <= 0:
        return None
    ms = int(number * 1000) if number < 1e11 else int(number)  # seconds by mistake: still a time
    return ms if ms <= MAX_EPOCH_MS else None


def _no_time(name: str, value: Any) -> str:
    """Why `value` (an epoch field) is no time: the field and the problem, for the quarantine's reason."""
    if value is None or value == "":
        return f"{name}: missing"
    if isinstance(value, bool):
        return f"{name}: {value!r} is not a number"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return f"{name}: {value!r} is not a number"
    if not math.isfinite(number):
        return f"{name}: {value!r} is not a finite number"
    if number <= 0:
        return f"{name}: {value!r} is not a time after 1970"
    return f"{name}: {value!r} is past the year 9999"


def _nul_at(value: Any, path: str, depth: int = 0) -> str | None:
    """The path of the first text (value or key) holding a NUL, which PostgreSQL cannot store."""
    if depth > MAX_DEPTH:
        return None  # refused as too deep elsewhere
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return f"{path}.{key!r}" if path else repr(key)
            if (found := _nul_at(item, f"{path}.{key}" if path else key, depth + 1)) is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if (found := _nul_at(item, f"{path}[{i}]", depth + 1)) is not None:
                return found
    return None


MAX_SITE_ID = 128
MAX_PLATE_INDEX = 10_000
MAX_PIXEL = 100_000  # corners are pixels of a camera frame


def _site(body: dict[str, Any]) -> str:
    value = body.get("site_id")
    if value is None or value == "":
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise Malformed(f"site_id: {type(value).__name__} is not text")
    text = str(value)
    if len(text) > MAX_SITE_ID:
        raise Malformed(f"site_id: {len(text)} characters, more than {MAX_SITE_ID}")
    return text


def _checked_result(result: dict[str, Any], where: str) -> None:
    """Numbers of a result that no camera sends: the post is quarantined with the field and the problem."""
    index = result.get("plate_index")
    if index is not None and not (
        isinstance(index, int) and not isinstance(index, bool) and 0 <= index < MAX_PLATE_INDEX
    ):
        raise Malformed(f"{where}.plate_index: {index!r} is not an index from 0 to {MAX_PLATE_INDEX - 1}")
    confidence = result.get("confidence")
    if confidence is not None:
        number = _number(confidence)
        if number is None or not 0 <= number <= 100:
            raise Malformed(f"{where}.confidence: {confidence!r} is not a number from 0 to 100")
    corners = result.get("coordinates")
    for j, corner in enumerate(corners if isinstance(corners, list) else []):
        for axis in ("x", "y"):
            value = corner.get(axis) if isinstance(corner, dict) else None
            if value is None:
                continue
            number = _number(value)
            if number is None or abs(number) > MAX_PIXEL:
                raise Malformed(f"{where}.coordinates[{j}].{axis}: {value!r} is not a pixel position")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None  # NaN and infinities ("nan", 1e400) are no number


def _count_dropped(key: str, item: Any, dropped: Counter[str]) -> None:
    if key == "vehicle" and isinstance(item, dict):  # counted by what it held: vehicle.make, vehicle.color...
        for sub in item:
            dropped[f"vehicle.{sub}"] += 1
    else:
        dropped[key] += 1


def scrub(value: Any, dropped: Counter[str] | None = None, path: str = "", depth: int = 0) -> Any:
    """The body without the statute-disallowed fields (anywhere in it), counting each one dropped."""
    if depth > MAX_DEPTH:
        raise Malformed(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _DISALLOWED:
                if dropped is not None:
                    _count_dropped(key, item, dropped)
                continue
            out[key] = scrub(item, dropped, f"{path}.{key}", depth + 1)
        return out
    if isinstance(value, list):
        return [scrub(v, dropped, path, depth + 1) for v in value]
    return value


def count_disallowed(value: Any, dropped: Counter[str], depth: int = 0) -> None:
    """What `scrub` counts and refuses (nesting past MAX_DEPTH), without copying the body: `parse` reads only the
    fields it maps, so the copy bought nothing there, and building it was most of the time a post took to parse
    (a recursive call and a path string per value). Visits containers only; the depth check is scrub's exactly."""
    if depth > MAX_DEPTH:
        raise Malformed(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        children = []
        for key, item in value.items():
            if key in _DISALLOWED:
                _count_dropped(key, item, dropped)
            else:
                children.append(item)
    elif isinstance(value, list):
        children = value
    else:
        return
    if children and depth >= MAX_DEPTH:
        raise Malformed(f"JSON nested deeper than {MAX_DEPTH} levels")  # where scrub would meet the value
    for item in children:
        if isinstance(item, _CONTAINERS):
            count_disallowed(item, dropped, depth + 1)


def _corners(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    out = []
    for c in value[:4]:
        if isinstance(c, dict) and _number(c.get("x")) is not None and _number(c.get("y")) is not None:
            out.append({"x": _number(c.get("x")), "y": _number(c.get("y"))})
    return out


def _candidates(value: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for c in value if isinstance(value, list) else []:
        if not isinstance(c, dict):
            continue
        plate = plates.normalize(str(c.get("plate") or ""))
        if not plates.is_plausible(plate) or plate in seen:
            continue
        seen.add(plate)
        out.append(
            {
                "plate": plate,
                "confidence": _number(c.get("confidence")),
                "matches_template": flag(c.get("matches_template")),
            }
        )
        if len(out) >= MAX_CANDIDATES:
            break
    return out


def _state(region: Any) -> str | None:
    if not isinstance(region, str):
        return None
    found = _STATE.match(region.strip().lower())
    return found.group(1).upper() if found else None


def _crop(value: Any, name: str, notes: list[str]) -> CheckedImage | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        notes.append(f"{name}: not base64")
        return None
    if len(data) > MAX_CROP_BYTES:
        notes.append(f"{name}: over {MAX_CROP_BYTES} bytes")
        return None
    try:
        return check_image(data, field=name, max_pixels=MAX_IMAGE_PIXELS)
    except AppError as exc:
        notes.append(str(exc.detail))
        return None


def _gps(body: dict[str, Any]) -> tuple[float | None, float | None]:
    lat, lon = _number(body.get("gps_latitude")), _number(body.get("gps_longitude"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, None  # (0, 0) is a GPS without a fix, not a place in the Gulf of Guinea
    return lat, lon


def _camera(body: dict[str, Any]) -> str:
    for key in ("camera_id", "camera_number"):
        value = body.get(key)
        if value not in (None, "") and not isinstance(value, bool):
            if isinstance(value, int | float) and not (value == int(value) and 0 <= value < 2**31):
                raise Malformed(f"{key}: {value!r} is not a camera number")
            return str(value)[:64]
    return "1"


def parse(raw: bytes) -> ParsedPost:
    body = loads(raw)
    if not isinstance(body, dict):
        raise Malformed("the body is not a JSON object")
    data_type = body.get("data_type")
    if data_type not in DATA_TYPES:
        raise Malformed(f"unknown data_type {data_type!r} (expected one of {', '.join(DATA_TYPES)})")
    post = ParsedPost(data_type=data_type, epoch_ms=None)
    count_disallowed(body, post.dropped)  # nothing below reads a disallowed field
    if b"\\u0000" in raw and (where := _nul_at(body, "")) is not None:
        raise Malformed(f"{where}: contains a NUL character")
    if data_type == "heartbeat":
        post.epoch_ms = epoch_ms(body.get("timestamp")) or epoch_ms(body.get("epoch_time"))
        if post.epoch_ms is None:
            raise Malformed(f"heartbeat: {_no_time('timestamp', body.get('timestamp'))}")
        return post
    if data_type == "alpr_results":
        _results(body, post)
    elif data_type == "alpr_group":
        post.reads.append(_group(body, "alpr_group", post.notes))
        post.epoch_ms = post.reads[0].epoch_ms
    else:
        _alert(body, post)
    return post


def _results(body: dict[str, Any], post: ParsedPost) -> None:
    at = epoch_ms(body.get("epoch_time"))
    if at is None:
        raise Malformed(f"alpr_results: {_no_time('epoch_time', body.get('epoch_time'))}")
    post.epoch_ms = at
    results = body.get("results")
    if not isinstance(results, list):
        raise Malformed("alpr_results without a results list")
    camera = _camera(body)
    site = _site(body)
    frame = body.get("uuid")
    if not isinstance(frame, str) or not frame:
        frame = f"{site}-cam{camera}-{at}"
    lat, lon = _gps(body)
    for i, result in enumerate(results):
        if not isinstance(result, dict):
            post.notes.append(f"results[{i}] is not an object")
            continue
        _checked_result(result, f"results[{i}]")
        plate = plates.normalize(str(result.get("plate") or ""))
        if not plates.is_plausible(plate):
            post.notes.append(f"results[{i}]: no plausible plate")
            continue
        index = result.get("plate_index")
        key = f"{frame}#{index if isinstance(index, int) else i}"
        r_lat, r_lon = _gps(result)
        post.reads.append(
            PlateRead(
                keys=[key],
                best_key=key,
                epoch_ms=at,
                plate=plate,
                confidence=_number(result.get("confidence")),
                corners=_corners(result.get("coordinates")),
                candidates=_candidates(result.get("candidates")),
                state=_state(result.get("region")),
                camera=camera,
                lat=r_lat if r_lat is not None else lat,
                lon=r_lon if r_lon is not None else lon,
                plate_crop=_crop(result.get("plate_crop_jpeg"), f"results[{i}].plate_crop_jpeg", post.notes),
                vehicle_crop=_crop(result.get("vehicle_crop_jpeg"), f"results[{i}].vehicle_crop_jpeg", post.notes),
                is_preview=False,
                source="alpr_results",
            )
        )


def _group(body: dict[str, Any], source: str, notes: list[str]) -> PlateRead:
    best = body.get("best_plate") if isinstance(body.get("best_plate"), dict) else {}
    assert isinstance(best, dict)
    plate = plates.normalize(str(best.get("plate") or body.get("best_plate_number") or ""))
    if not plates.is_plausible(plate):
        raise Malformed("alpr_group without a plausible best plate")
    at = (
        epoch_ms(body.get("best_uuid_epoch_ms")) or epoch_ms(body.get("epoch_start")) or epoch_ms(body.get("epoch_end"))
    )
    if at is None:
        field_name = next((k for k in ("best_uuid_epoch_ms", "epoch_start") if body.get(k) is not None), "epoch_start")
        raise Malformed(f"alpr_group: {_no_time(field_name, body.get(field_name))}")
    uuids = [u for u in body.get("uuids") or [] if isinstance(u, str) and u]
    indexes = body.get("plate_indexes") if isinstance(body.get("plate_indexes"), list) else []
    keys = [f"{u}#{indexes[i] if i < len(indexes) and isinstance(indexes[i], int) else 0}" for i, u in enumerate(uuids)]
    best_uuid = body.get("best_uuid")
    best_index = best.get("plate_index") if isinstance(best.get("plate_index"), int) else 0
    if isinstance(best_uuid, str) and best_uuid:
        best_key = f"{best_uuid}#{best_index}"
    elif keys:
        best_key = keys[0]
    else:
        raise Malformed("alpr_group without best_uuid or uuids")
    if best_key not in keys:
        keys.append(best_key)
    lat, lon = _gps(body)
    return PlateRead(
        keys=keys,
        best_key=best_key,
        epoch_ms=at,
        plate=plate,
        confidence=_number(body.get("best_confidence")) or _number(best.get("confidence")),
        corners=_corners(best.get("coordinates")),
        candidates=_candidates(body.get("candidates") or best.get("candidates")),
        state=_state(body.get("best_region") or best.get("region")),
        camera=_camera(body),
        lat=lat,
        lon=lon,
        plate_crop=_crop(best.get("plate_crop_jpeg"), "best_plate.plate_crop_jpeg", notes),
        vehicle_crop=_crop(body.get("vehicle_crop_jpeg"), "vehicle_crop_jpeg", notes),
        is_preview=flag(body.get("is_preview")),
        source=source,
    )


def _alert(body: dict[str, Any], post: ParsedPost) -> None:
    group = body.get("group")
    if isinstance(group, dict):
        post.reads.append(_group(group, "alpr_alert", post.notes))
        post.epoch_ms = post.reads[0].epoch_ms
        return
    plate = plates.normalize(str(body.get("plate_number") or ""))
    at = epoch_ms(body.get("epoch_time"))
    if not plates.is_plausible(plate):
        raise Malformed("alpr_alert without a group, or a plausible plate_number")
    if at is None:
        raise Malformed(f"alpr_alert: {_no_time('epoch_time', body.get('epoch_time'))}")
    key = f"alert-{_camera(body)}-{at}#{plate}"
    lat, lon = _gps(body)
    post.epoch_ms = at
    post.reads.append(
        PlateRead([key], key, at, plate, None, [], [], None, _camera(body), lat, lon, None, None, False, "alpr_alert")
    )


def token_in_custom_data(raw: bytes) -> str | None:
    """The commercial agent's `custom_data` may carry the token (a string `token=...`, the bare token, or an
    object with `token`)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    custom = body.get("custom_data")
    if isinstance(custom, dict):
        value = custom.get("token") or custom.get("alpr_token")
        return value if isinstance(value, str) else None
    if isinstance(custom, str) and custom:
        if custom.startswith("{"):
            try:
                inner = json.loads(custom)
            except (ValueError, RecursionError):
                return None
            value = inner.get("token") if isinstance(inner, dict) else None
            return value if isinstance(value, str) else None
        for part in re.split(r"[;&,\s]+", custom):
            if part.startswith("token="):
                return part[len("token=") :]
        return custom.strip()
    return None


# Records parsed (or applied) between two yields to the event loop: the importer shares its loop with the posts it
# imports, and a few thousand records parsed in one go (or in a thread, whose hold on the GIL makes the loop wait
# up to the 5 ms switch interval at every turn) showed as 100-200 ms answers to the agents (issue 18).
YIELD_EVERY = 16


async def parse_all(
    records: list[SpoolRecord],
) -> list[tuple[SpoolRecord, ParsedPost | Malformed]]:
    out: list[tuple[SpoolRecord, ParsedPost | Malformed]] = []
    for i, record in enumerate(records):
        if i and i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        try:
            out.append((record, parse(record.body)))
        except Malformed as exc:
            out.append((record, exc))
        except Exception as exc:  # noqa: BLE001 - a body the parser chokes on is quarantined alone
            log.exception("agent_post_parse_failed")
            out.append((record, Malformed(f"cannot be parsed: {type(exc).__name__}")))
    return out
