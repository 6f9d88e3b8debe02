"""Is a new schema of an event type still compatible with the published one?

The published schema (the file checked in under `schemas/json/`) is a promise
to every consumer and to every event already stored: history is replayed
through today's code, so today's schema must accept yesterday's events, and
yesterday's consumers must understand today's events. Within one type name
that allows adding optional fields and loosening constraints, nothing else:

- a property may not disappear, change its JSON type(s), or change a `const`;
- a property may not become required, and no new required property may appear
  (stored events lack it); a required property may not become optional
  (consumers rely on it being there);
- `minimum`/`minLength`/… may not rise, `maximum`/`maxLength`/… may not fall,
  an `enum` may not lose values, a `pattern` may not appear or change, and an
  object may not become closed (`additionalProperties: false`).

An added optional property is never a problem: `data` is open (readers ignore
fields they do not know), so yesterday's consumers accept today's events.
Anything else needs a new type name (`…v2`), registered next to the old one.
The checker walks both schemas side by side; it knows the JSON Schema subset
that pydantic and `schemas.contract` produce, and treats what it does not know
conservatively (a difference in a keyword it cannot judge is reported).
"""

from __future__ import annotations

from typing import Any

_RAISE_IS_BREAKING = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_LOWER_IS_BREAKING = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
# Keywords that carry no promise about the data.
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "format", "$comment", "deprecated"}
)
_HANDLED = frozenset(
    {
        "type",
        "anyOf",
        "oneOf",
        "const",
        "enum",
        "pattern",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "$ref",
        "$defs",
        "$schema",
        "$id",
        *_RAISE_IS_BREAKING,
        *_LOWER_IS_BREAKING,
    }
)


def breaking_changes(published: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Every way `current` breaks `published`; empty when compatible."""
    problems: list[str] = []
    _compare(published, current, "$", published, current, problems)
    return problems


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _types(schema: dict[str, Any], root: dict[str, Any]) -> frozenset[str]:
    """The JSON types a schema admits ("any" when it does not say)."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return frozenset({_json_type(schema["const"])})
    if "enum" in schema:
        return frozenset(_json_type(value) for value in schema["enum"])
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            found: set[str] = set()
            for branch in schema[combinator]:
                found |= _types(branch, root)
            return frozenset(found)
    declared = schema.get("type")
    if declared is None:
        return frozenset({"any"})
    return frozenset([declared] if isinstance(declared, str) else declared)


def _branches(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """JSON type → the (resolved) sub-schema describing values of that type."""
    schema = _resolve(schema, root)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            out: dict[str, dict[str, Any]] = {}
            for branch in schema[combinator]:
                for kind, sub in _branches(branch, root).items():
                    out.setdefault(kind, sub)
            return out
    return dict.fromkeys(_types(schema, root), schema)


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    problems: list[str],
) -> None:
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if old_types != new_types:
        problems.append(f"{path}: retyped from {_show(old_types)} to {_show(new_types)}")
        return
    new_branches = _branches(new, new_root)
    for kind, old_branch in _branches(old, old_root).items():
        _compare_branch(old_branch, new_branches[kind], path, old_root, new_root, problems)


def _compare_branch(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    problems: list[str],
) -> None:
    if ("const" in old or "const" in new) and old.get("const") != new.get("const"):
        problems.append(f"{path}: const changed from {old.get('const')!r} to {new.get('const')!r}")
    if "enum" in new:
        lost = [value for value in old.get("enum", []) if value not in new["enum"]]
        if "enum" not in old or lost:
            problems.append(f"{path}: enum narrowed (values no longer allowed: {lost or 'any'})")
    if new.get("pattern") is not None and new.get("pattern") != old.get("pattern"):
        problems.append(f"{path}: pattern added or changed")
    for key in _RAISE_IS_BREAKING:
        if key in new and (key not in old or new[key] > old[key]):
            problems.append(f"{path}: {key} raised to {new[key]}")
    for key in _LOWER_IS_BREAKING:
        if key in new and (key not in old or new[key] < old[key]):
            problems.append(f"{path}: {key} lowered to {new[key]}")
    for key in sorted(set(old) | set(new)):
        if key in _ANNOTATIONS or key in _HANDLED or key.startswith("x-"):
            continue
        if old.get(key) != new.get(key):
            problems.append(
                f"{path}: keyword {key!r} changed; cannot judge it, treated as breaking"
            )
    if "object" in _types(old, old_root):
        _compare_objects(old, new, path, old_root, new_root, problems)
    if "items" in old or "items" in new:
        old_items = old.get("items", {})
        new_items = new.get("items", {})
        if isinstance(old_items, dict) and isinstance(new_items, dict):
            _compare(old_items, new_items, f"{path}[]", old_root, new_root, problems)


def _compare_objects(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    problems: list[str],
) -> None:
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    old_required = set(old.get("required", []))
    new_required = set(new.get("required", []))
    for name in sorted(old_props):
        where = f"{path}.{name}"
        if name not in new_props:
            problems.append(f"{where}: removed")
            continue
        if name in new_required and name not in old_required:
            problems.append(f"{where}: optional field made required")
        if name in old_required and name not in new_required:
            problems.append(f"{where}: required field made optional")
        _compare(old_props[name], new_props[name], where, old_root, new_root, problems)
    for name in sorted(set(new_props) - set(old_props)):
        if name in new_required:
            problems.append(f"{path}.{name}: added as required (stored events lack it)")
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        problems.append(f"{path}: closed to additional properties")
    old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(old_extra, dict) and isinstance(new_extra, dict):
        _compare(old_extra, new_extra, f"{path}.*", old_root, new_root, problems)


def _show(types: frozenset[str]) -> str:
    return " | ".join(sorted(types))
