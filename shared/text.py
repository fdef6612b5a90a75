"""Text from outside: no control characters (PostgreSQL cannot store a NUL, and the others have no business in a
reason, a camera name or a list owner). One type for every service's schemas, and the check it is made of."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

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
