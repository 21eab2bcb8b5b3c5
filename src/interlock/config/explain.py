"""Turn pydantic validation errors into readable, located findings.

Pydantic's messages are written for programmers ("Input should be a valid
tuple", "Extra inputs are not permitted"); a manifest author wants to know
what to write instead ("must be a list", "unknown field 'urll'; did you mean
'url'?"). Each finding keeps the error's ``loc`` as a document path, so the
loader can point at the exact line and column.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Final, TypeGuard

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from interlock.config.checks import Finding
from interlock.config.manifest import PATTERN_HELP
from interlock.config.urls import masked_url
from interlock.config.yaml_source import DocPath

__all__ = ["explain_validation_error", "unknown_field"]

# Error types whose pydantic message reads badly, by what to say instead.
_PLAIN: Final = {
    "string_type": "must be text",
    "string_too_short": "must not be empty",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}


def explain_validation_error(
    exc: ValidationError, at: DocPath, model: type[BaseModel]
) -> Iterator[Finding]:
    """One finding per pydantic error of ``model`` validated at document path ``at``."""
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if isinstance(part, str | int))
        kind = error["type"]
        if kind == "missing":
            # Located at the mapping that lacks the field.
            yield Finding((*at, *loc[:-1]), f"missing required field {loc[-1]!r}")
        elif kind == "extra_forbidden":
            allowed = _fields(model, loc)
            yield Finding((*at, *loc), unknown_field(str(loc[-1]), allowed), at_key=True)
        else:
            yield Finding((*at, *loc), _message(error))


def unknown_field(key: str, allowed: Iterable[str]) -> str:
    """``unknown field 'urll'; did you mean 'url'?``."""
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field {key!r}{hint}"


def _message(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        shown = error["input"]
        if isinstance(shown, str) and "://" in shown:  # a URL: never its userinfo or query values
            shown = masked_url(shown)
        return f"{shown!r} is not valid: {PATTERN_HELP.get(pattern, f'must match {pattern}')}"
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"must list at least {count} item{'' if count == 1 else 's'}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind in _PLAIN:
        return _PLAIN[kind]
    return error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")


def _fields(model: type[BaseModel], loc: tuple[str | int, ...]) -> Iterable[str]:
    """The field names allowed where ``loc`` points, for a did-you-mean hint."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        if not isinstance(part, str) or part not in current.model_fields:
            continue
        annotation = current.model_fields[part].annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if _is_model(a)]
        if not candidates:
            return ()
        current = candidates[0]
    return current.model_fields.keys()


def _is_model(candidate: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)
