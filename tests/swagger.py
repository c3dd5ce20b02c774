"""Turn Clever's Swagger 2.0 definitions into JSON Schema validators.

Clever publishes no JSON Schema, only Swagger 2.0 YAML. Swagger's schema dialect is JSON Schema
draft 4 plus vendor keys, so the conversion is small: ``x-nullable: true`` widens the type (and
enum) to allow ``null``, ``format: datetime`` (Clever's spelling) is dropped as unknown, and in
strict mode every object that lists its properties forbids others, which is how the tests prove
that a translated v2 object carries no key the v2 spec does not define.

Clever's spec files are not part of this repository (their license does not let us copy them).
Tests that need them carry the ``spec`` marker and find them in the folder named by
``CLEVER_API_SPECS`` (relative paths are relative to the repository root), by default
``../shared/clever-api`` beside the repository; ``tests/conftest.py`` skips them, saying how to
get the files, when that folder is missing. ``docs/development.md`` explains the setup.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT / os.environ.get("CLEVER_API_SPECS", "../shared/clever-api")
SPEC_FILES = (
    "v2.0.yml",
    "v2.0-client.yml",
    "v2.0-events.yml",
    "v2.1.yml",
    "v3.0.yml",
    "v3.0-events.yml",
    "v3.1.yml",
    "v3.1-events.yml",
    "samples/v3.0-demo-users.json",
)
SPECS_MISSING = (
    f"Clever's API specs are not in {SPEC_DIR}: set CLEVER_API_SPECS to a folder holding "
    f"{', '.join(SPEC_FILES[:-1])} from Clever's public repository "
    "https://github.com/Clever/swagger-api and samples/v3.0-demo-users.json "
    "(tests/mocks/users.json of https://github.com/Clever/clever-go); see docs/development.md"
)


def specs_available() -> bool:
    """Whether Clever's spec files are where ``CLEVER_API_SPECS`` says."""
    return all((SPEC_DIR / name).is_file() for name in SPEC_FILES)


@functools.cache
def load_spec(name: str) -> dict[str, Any]:
    """Load one spec file (e.g. ``v3.0-events.yml``) from ``CLEVER_API_SPECS``."""
    if not specs_available():
        pytest.fail(f"a test reading Clever's specs lacks the 'spec' marker; {SPECS_MISSING}")
    with (SPEC_DIR / name).open() as fh:
        spec: dict[str, Any] = yaml.safe_load(fh)
    return spec


def _convert(node: Any, *, strict: bool) -> Any:
    if isinstance(node, list):
        return [_convert(item, strict=strict) for item in node]
    if not isinstance(node, dict):
        return node
    dropped = {"x-validation", "discriminator", "example", "x-omitempty", "x-nullable"}
    out = {k: _convert(v, strict=strict) for k, v in node.items() if k not in dropped}
    if "$ref" in out:
        return (
            {"$ref": out["$ref"], "nullable_ref": True}
            if node.get("x-nullable")
            else {"$ref": out["$ref"]}
        )
    if node.get("x-nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if strict and out.get("type") in ("object", ["object", "null"]) and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def _fix_nullable_refs(node: Any) -> Any:
    if isinstance(node, list):
        return [_fix_nullable_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("nullable_ref"):
        return {"anyOf": [{"$ref": node["$ref"]}, {"type": "null"}]}
    return {key: _fix_nullable_refs(value) for key, value in node.items()}


@functools.cache
def _definitions(spec_name: str, strict: bool) -> dict[str, Any]:
    spec = load_spec(spec_name)
    converted = _fix_nullable_refs(_convert(copy.deepcopy(spec["definitions"]), strict=strict))
    if strict:
        # allOf branches each forbidding the other's keys would reject everything: an event type
        # is Event + its own properties, so merge them into one closed object instead.
        for name, schema in converted.items():
            if "allOf" in schema:
                merged: dict[str, Any] = {"type": "object", "properties": {}}
                for part in schema["allOf"]:
                    target = converted[part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part
                    merged["properties"].update(target.get("properties", {}))
                    merged.setdefault("required", []).extend(target.get("required", []))
                merged["additionalProperties"] = False
                converted[name] = merged
    return dict(converted)


def validator(spec_name: str, definition: str, *, strict: bool = False) -> jsonschema.Validator:
    """Return a validator for one definition, e.g. ``validator("v2.1.yml", "Student")``."""
    defs = _definitions(spec_name, strict)
    schema = {"$ref": f"#/definitions/{definition}", "definitions": defs}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator_: jsonschema.Validator = cls(schema)
    return validator_


def errors(spec_name: str, definition: str, instance: Any, *, strict: bool = False) -> list[str]:
    """Return every validation problem as ``path: message`` lines (empty when valid)."""
    found = validator(spec_name, definition, strict=strict).iter_errors(instance)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found)
