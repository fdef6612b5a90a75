"""Text from outside: no control characters (PostgreSQL cannot store a NUL, and the others have no business in a
reason, a camera name or a list owner). One type for every service's schemas, and the check it is made of."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

# C0 controls except tab, line feed and carriage return (multi-line reasons keep their lines), DEL and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def has_control(value: str) -> bool:
    return _CONTROL.search(value) is not None


def refuse_control(value: str) -> str:
    if has_control(value):
        raise ValueError("control characters (NUL and the like) are not allowed in text")
    return value


def strip_control(value: str) -> str:
    """For what must be kept whatever it holds (an audit entry of a refused request): the controls removed."""
    return _CONTROL.sub("", value)


SafeStr = Annotated[str, AfterValidator(refuse_control)]


def find_control(value: Any, skip: frozenset[str] = frozenset(), path: str = "") -> str | None:
    """Where in a JSON-like value the first control character is (a dotted path), or None."""
    if isinstance(value, str):
        return path or "value" if has_control(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and has_control(key):
                return f"{path}.{key!r}" if path else repr(key)
            if key in skip:
                continue
            found = find_control(item, path=f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = find_control(item, path=f"{path}[{i}]")
            if found is not None:
                return found
    return None


class CleanInput(BaseModel):
    """The base of every request body and every object nested in one: a field it does not know is refused (422, its
    `loc` naming the field) rather than silently ignored (a decision's `expires_in_days` was dropped for the default),
    and text anywhere in one (values, nested objects, lists, keys) with a control character is refused before any
    field is looked at. A body may name top-level fields it checks itself (`control_checked_later`), such as a search
    cursor whose refusal must be audited."""

    model_config = ConfigDict(extra="forbid")
    control_checked_later: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        where = find_control(data, cls.control_checked_later)
        if where is not None:
            raise ValueError(f"control characters (NUL and the like) are not allowed in text: {where}")
        return data


def without_control(value: Any) -> Any:
    """A JSON-like value with the control characters taken out of every string in it (keys too): for what must be
    stored whatever the request held, such as the audit entry of a refused request."""
    if isinstance(value, str):
        return strip_control(value)
    if isinstance(value, dict):
        return {without_control(k): without_control(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_control(v) for v in value]
    return value


# OWASP's CSV-injection advice: a cell a spreadsheet would read as a formula starts with one of these.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """`value` safe for a CSV cell: text starting like a formula gets a leading `'` (numbers pass as they are).
    (defusedcsv leaves tab and CR alone and rewrites `|` and `%`; OWASP asks for exactly these six.)"""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
