"""A strict decoder from YAML/JSON data to the typed, frozen API models.

The models are plain frozen dataclasses; their type hints are the schema. This module walks a
value against those hints and either builds the model or records a `FieldError` for each
problem, with the field path, and keeps going so that one pass reports everything.

Why not a general-purpose library: Istio users need errors that name the field path, list the
accepted fields when one is misspelt, and explain Istio-specific rules (weights summing to 100,
RE2 regexes, durations). Those messages are the product here, so the decoder is ours and small.

Conventions a model class can use:
- field names are snake_case; the YAML key is the camelCase form unless the field's metadata
  gives `{"key": ...}`;
- a field without a default is required; `X | None = None` is optional;
- `tuple[T, ...]` is a YAML list, `FrozenDict[str, T]` a YAML map;
- `Annotated[T, check, ...]` runs each check (a callable returning an error message or None);
- a class attribute `UNSUPPORTED: ClassVar[Mapping[str, str]]` maps Istio fields istiolite does
  not implement to the reason, so they are rejected with a message instead of "unknown"; an
  enum marked with `unsupported_values` does the same for the values Istio has and istiolite
  does not (a TLS mode, a protocol);
- a method `check(self) -> Iterable[tuple[Path, str]]` adds cross-field rules; it runs only
  when the object itself decoded cleanly, with paths relative to the object.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar, Generic, TypeVar

from istiolite.api.duration import DurationError, parse_duration
from istiolite.api.errors import FieldError, MapKey, Path, ValidationError

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class FrozenDict(Mapping[K, V], Generic[K, V]):
    """An immutable, hashable mapping (labels, headers) that keeps insertion order."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._data: dict[K, V] = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenDict[K, V]], tuple[dict[K, V]]]:
        return (type(self), (self._data,))


Check = Callable[[Any], str | None]
E = TypeVar("E", bound=enum.Enum)
_UNSUPPORTED_VALUES = "_istiolite_unsupported_values"


def unsupported_values(
    reasons: Mapping[str, str], *, any_case: bool = False
) -> Callable[[type[E]], type[E]]:
    """Mark an enum with Istio's values istiolite does not implement, each with the reason.

    Such a value is refused as `not supported: <reason>` rather than as an unknown one.
    `any_case`: the enum reads its values in any case (its `_missing_` says so), and so are
    these.
    """

    def mark(cls: type[E]) -> type[E]:
        setattr(cls, _UNSUPPORTED_VALUES, (dict(reasons), any_case))
        return cls

    return mark


@typing.dataclass_transform(frozen_default=True, kw_only_default=True)
def model(cls: type[T]) -> type[T]:
    """The form of every API model: a frozen, slotted, keyword-only dataclass."""
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)


class _Invalid:
    """Placeholder for a value that failed to decode; its error is already recorded."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def describe(value: object) -> str:
    """A short description of a YAML value for error messages: `string 'abc'`, `list`, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    key: str
    hint: Any
    required: bool


class Decoder:
    """Decodes one document; collects every error instead of stopping at the first."""

    _fields_cache: ClassVar[dict[type, tuple[_Field, ...]]] = {}

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: Path, message: str) -> Any:
        self.errors.append(FieldError(path, message))
        return INVALID

    def decode(self, hint: Any, value: Any, path: Path) -> Any:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            base, *checks = typing.get_args(hint)
            errors_before = len(self.errors)
            decoded = self.decode(base, value, path)
            # A list or map with a broken item is not checked as a whole: its error is enough.
            if decoded is not INVALID and len(self.errors) == errors_before:
                for check in checks:
                    problem = check(decoded)
                    if problem:
                        return self.fail(path, problem)
            return decoded
        if origin in (types.UnionType, typing.Union):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if value is None:
                return None
            if len(options) != 1:
                raise TypeError(f"unions other than `X | None` are not supported: {hint}")
            return self.decode(options[0], value, path)
        if origin is tuple:
            return self._decode_list(typing.get_args(hint)[0], value, path)
        if origin is FrozenDict:
            key_hint, item_hint = typing.get_args(hint)
            return self._decode_map(key_hint, item_hint, value, path)
        if dataclasses.is_dataclass(hint):
            return self.decode_object(typing.cast(type, hint), value, path)
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return self._decode_enum(hint, value, path)
        scalar = _SCALARS.get(hint)
        if scalar is None:
            raise TypeError(f"no decoder for type {hint!r}")
        return scalar(self, value, path)

    def decode_object(self, cls: type[T], value: Any, path: Path) -> T:
        if not isinstance(value, Mapping):
            return typing.cast(T, self.fail(path, f"must be a map, got {describe(value)}"))
        fields = self._fields(cls)
        by_key = {f.key: f for f in fields}
        errors_before = len(self.errors)
        unsupported: Mapping[str, str] = getattr(cls, "UNSUPPORTED", {})
        for key in value:
            if key in by_key:
                continue
            if key in unsupported:
                self.fail((*path, str(key)), f"not supported: {unsupported[key]}")
            else:
                self.fail((*path, str(key)), _unknown_field(key, list(by_key)))
        kwargs: dict[str, Any] = {}
        for f in fields:
            raw = value.get(f.key)
            if raw is None:
                if f.required:
                    self.fail((*path, f.key), "required")
                continue
            kwargs[f.name] = self.decode(f.hint, raw, (*path, f.key))
        if len(self.errors) > errors_before:
            return typing.cast(T, INVALID)
        obj = cls(**kwargs)
        check = getattr(obj, "check", None)
        if check is not None:
            for rel, message in check():
                self.fail((*path, *rel), message)
        return obj if len(self.errors) == errors_before else typing.cast(T, INVALID)

    def _decode_list(self, item: Any, value: Any, path: Path) -> Any:
        if not isinstance(value, list | tuple):
            return self.fail(path, f"must be a list, got {describe(value)}")
        return tuple(self.decode(item, v, (*path, i)) for i, v in enumerate(value))

    def _decode_map(self, key: Any, item: Any, value: Any, path: Path) -> Any:
        if not isinstance(value, Mapping):
            return self.fail(path, f"must be a map, got {describe(value)}")
        out: dict[str, Any] = {}
        for k, v in value.items():
            at = (*path, MapKey(str(k)))
            if not isinstance(k, str):
                self.fail(at, f"keys must be strings, got {describe(k)}")
            elif self.decode(key, k, at) is not INVALID:
                out[k] = self.decode(item, v, at)
        return FrozenDict(out)

    def _decode_enum(self, cls: type[enum.Enum], value: Any, path: Path) -> Any:
        try:
            return cls(value)
        except (ValueError, TypeError):
            reasons, any_case = getattr(cls, _UNSUPPORTED_VALUES, ({}, False))
            found = next((k for k in reasons if _same_value(k, value, any_case=any_case)), None)
            if found is not None:
                return self.fail(path, f"{found!r} is not supported: {reasons[found]}")
            accepted = ", ".join(str(m.value) for m in cls)
            return self.fail(path, f"must be one of {accepted}; got {describe(value)}")

    @classmethod
    def _fields(cls, model: type) -> tuple[_Field, ...]:
        cached = cls._fields_cache.get(model)
        if cached is None:
            hints = typing.get_type_hints(model, include_extras=True)
            cached = tuple(
                _Field(
                    name=f.name,
                    key=f.metadata.get("key", camel(f.name)),
                    hint=hints[f.name],
                    required=f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING,
                )
                for f in dataclasses.fields(model)
            )
            cls._fields_cache[model] = cached
        return cached


def _same_value(known: str, value: Any, *, any_case: bool) -> bool:
    if value == known:
        return True
    return any_case and isinstance(value, str) and value.upper() == known.upper()


def _unknown_field(key: object, accepted: list[str]) -> str:
    guess = difflib.get_close_matches(str(key), accepted, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"unknown field{hint}; accepted: {', '.join(accepted)}"


def _str(d: Decoder, value: Any, path: Path) -> Any:
    if isinstance(value, str):
        return value
    return d.fail(path, f"must be a string, got {describe(value)}")


def _bool(d: Decoder, value: Any, path: Path) -> Any:
    if isinstance(value, bool):
        return value
    return d.fail(path, f"must be true or false, got {describe(value)}")


def _int(d: Decoder, value: Any, path: Path) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return d.fail(path, f"must be an integer, got {describe(value)}")


def _float(d: Decoder, value: Any, path: Path) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return d.fail(path, f"must be a number, got {describe(value)}")


def _duration(d: Decoder, value: Any, path: Path) -> Any:
    if not isinstance(value, str):
        return d.fail(path, f"must be a duration such as '1.5s' or '100ms', got {describe(value)}")
    try:
        return parse_duration(value)
    except DurationError as e:
        return d.fail(path, str(e))


_SCALARS: dict[Any, Callable[[Decoder, Any, Path], Any]] = {
    str: _str,
    bool: _bool,
    int: _int,
    float: _float,
    timedelta: _duration,
}


def decode(cls: type[T], value: Any, *, resource: str, path: Path = ()) -> T:
    """Decode `value` into `cls`, or raise `ValidationError` listing every problem."""
    decoder = Decoder()
    obj = decoder.decode_object(cls, value, path)
    if decoder.errors:
        raise ValidationError(resource, decoder.errors)
    return obj
