"""Backward-compatibility check between two JSON Schemas of one event type.

"Backward compatible" means: every document the old schema accepted, the new one still
accepts, and nothing the old schema promised is gone. Auditors replay topics from offset
0 with the newest code, so the new schema is checked against every earlier snapshot.

Rules (each a recursive step below):

- `$ref` / `$defs` are resolved; a reference cycle is compared once.
- `type`: the new types must include the old ones (`integer` may widen to `number`).
- objects: no property is removed; a property may not become required; a new property
  may be added only as optional; `additionalProperties` / `propertyNames` may not
  tighten.
- `enum` values may be added, never removed; `const` may not change or appear.
- length, size and range bounds may be loosened, never tightened or added; `pattern`,
  `format` and `multipleOf` may not change or appear; `default` may not change.
- `anyOf` / `oneOf`: every old branch must still be accepted by some new branch.
- any other validation keyword that differs is reported: unknown means breaking.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Schema = Mapping[str, Any]

# Keywords that document but never constrain; they may change freely.
_ANNOTATIONS = frozenset(
    {
        "$id",
        "$schema",
        "$comment",
        "title",
        "description",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "discriminator",
    }
)
_UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")
_LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")
_FIXED = ("pattern", "format", "multipleOf", "const")
_HANDLED = frozenset(
    {
        "$ref",
        "$defs",
        "definitions",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "items",
        "prefixItems",
        "enum",
        "anyOf",
        "oneOf",
        "default",
        "uniqueItems",
        *_UPPER_BOUNDS,
        *_LOWER_BOUNDS,
        *_FIXED,
    }
)


@dataclass(frozen=True)
class Incompatibility:
    """One breaking difference: where in the document (a JSON path) and what changed."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check_compatibility(old: Schema, new: Schema) -> list[Incompatibility]:
    """Every way in which `new` fails to read what `old` described (empty: compatible)."""
    return _Checker(old, new).compare(old, new, "$")


class _Checker:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.in_progress: set[tuple[str, str]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        refs = (str(old.get("$ref", "")), str(new.get("$ref", "")))
        if refs != ("", "") and refs in self.in_progress:
            return []  # a recursive definition: this pair is already being compared
        self.in_progress.add(refs)
        try:
            old, new = _resolve(old, self.old_root), _resolve(new, self.new_root)
            return list(self._compare(old, new, path))
        finally:
            self.in_progress.discard(refs)

    def _compare(self, old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
        if "anyOf" in old or "oneOf" in old or "anyOf" in new or "oneOf" in new:
            yield from self._branches(old, new, path)
            yield from _default(old, new, path)
            return
        yield from _types(old, new, path)
        yield from self._objects(old, new, path)
        yield from self._arrays(old, new, path)
        yield from _values(old, new, path)
        yield from _default(old, new, path)
        yield from _bounds(old, new, path)
        yield from _unknown_keywords(old, new, path)

    def _branches(self, old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
        old_branches = _branches_of(old)
        new_branches = _branches_of(new)
        for old_branch in old_branches:
            attempts = [self.compare(old_branch, b, path) for b in new_branches]
            if any(not issues for issues in attempts):
                continue
            same_kind = [
                issues
                for b, issues in zip(new_branches, attempts, strict=True)
                if _kind(_resolve(b, self.new_root)) == _kind(_resolve(old_branch, self.old_root))
            ]
            if same_kind:  # the branch is still there but changed: say how
                yield from min(same_kind, key=len)
            else:
                kind = _kind(_resolve(old_branch, self.old_root))
                yield Incompatibility(path, f"union branch of type {kind!r} was removed")

    def _objects(self, old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
        old_props: Mapping[str, Schema] = old.get("properties", {})
        new_props: Mapping[str, Schema] = new.get("properties", {})
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ()))
        for name, old_prop in old_props.items():
            if name not in new_props:
                yield Incompatibility(f"{path}.{name}", "property was removed")
            else:
                yield from self.compare(old_prop, new_props[name], f"{path}.{name}")
        for name in sorted(new_required - old_required):
            if name in old_props:
                yield Incompatibility(f"{path}.{name}", "optional property became required")
            else:
                yield Incompatibility(f"{path}.{name}", "new property is required")
        yield from self._open_schema(old, new, "additionalProperties", f"{path}.*")
        yield from self._open_schema(old, new, "propertyNames", f"{path}.<key>")

    def _arrays(self, old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
        yield from self._open_schema(old, new, "items", f"{path}[*]")
        old_prefix = old.get("prefixItems", [])
        new_prefix = new.get("prefixItems", [])
        for index, old_item in enumerate(old_prefix):
            if index < len(new_prefix):
                yield from self.compare(old_item, new_prefix[index], f"{path}[{index}]")
        if len(new_prefix) > len(old_prefix):
            yield Incompatibility(path, "tuple items were added")
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            yield Incompatibility(path, "uniqueItems was added")

    def _open_schema(
        self, old: Schema, new: Schema, keyword: str, path: str
    ) -> Iterator[Incompatibility]:
        """A sub-schema where absent (or `true`) accepts anything and `false` accepts nothing."""
        old_sub, new_sub = old.get(keyword, True), new.get(keyword, True)
        if new_sub is True or old_sub is False:
            return
        if new_sub is False:
            yield Incompatibility(path, f"{keyword} now rejects what it accepted")
        elif old_sub is True:
            yield Incompatibility(path, f"{keyword} was constrained")
        else:
            yield from self.compare(old_sub, new_sub, path)


def _resolve(schema: Schema, root: Schema) -> Schema:
    seen: set[str] = set()
    while "$ref" in schema:
        ref = str(schema["$ref"])
        if not ref.startswith("#/") or ref in seen:
            raise ValueError(f"cannot resolve $ref {ref!r} (only local, acyclic refs)")
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **siblings}
    return schema


def _branches_of(schema: Schema) -> list[Schema]:
    if "anyOf" in schema or "oneOf" in schema:
        return [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    return [schema]


def _kind(schema: Schema) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(sorted(kind))
    return str(kind) if kind is not None else "any"


def _type_set(schema: Schema) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return set(kind) if isinstance(kind, list) else {kind}


def _types(old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
    old_types, new_types = _type_set(old), _type_set(new)
    if new_types is None:
        return
    if old_types is None:
        yield Incompatibility(path, f"type was restricted to {sorted(new_types)}")
        return
    if "number" in new_types:
        new_types = new_types | {"integer"}
    lost = old_types - new_types
    if lost:
        yield Incompatibility(path, f"type changed from {sorted(old_types)} to {sorted(new_types)}")


def _values(old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
    if "enum" in new:
        if "enum" not in old:
            yield Incompatibility(path, f"enum {new['enum']} was added")
        else:
            removed = [v for v in old["enum"] if v not in new["enum"]]
            if removed:
                yield Incompatibility(path, f"enum values {removed} were removed")
    for keyword in _FIXED:
        if keyword in new and old.get(keyword) != new[keyword]:
            if keyword in old:
                yield Incompatibility(
                    path, f"{keyword} changed from {old[keyword]!r} to {new[keyword]!r}"
                )
            else:
                yield Incompatibility(path, f"{keyword} {new[keyword]!r} was added")


def _default(old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
    # A replayed document that omits the field would silently change meaning.
    if "default" in old and "default" in new and old["default"] != new["default"]:
        yield Incompatibility(
            path, f"default changed from {old['default']!r} to {new['default']!r}"
        )


def _bounds(old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
    for keyword in _UPPER_BOUNDS:
        if keyword in new and (keyword not in old or new[keyword] < old[keyword]):
            yield Incompatibility(
                path, f"{keyword} tightened from {old.get(keyword, 'none')} to {new[keyword]}"
            )
    for keyword in _LOWER_BOUNDS:
        if keyword in new and (keyword not in old or new[keyword] > old[keyword]):
            yield Incompatibility(
                path, f"{keyword} tightened from {old.get(keyword, 'none')} to {new[keyword]}"
            )


def _unknown_keywords(old: Schema, new: Schema, path: str) -> Iterator[Incompatibility]:
    for keyword in sorted((set(old) | set(new)) - _HANDLED - _ANNOTATIONS):
        if old.get(keyword) != new.get(keyword):
            yield Incompatibility(
                path, f"keyword {keyword!r} changed and the checker cannot prove it compatible"
            )
