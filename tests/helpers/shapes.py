"""A small validator for the CDS Hooks specification's logical-model StructureDefinitions (shared/external).

It checks what the shapes state: required elements (min), single values versus arrays (max), and the
JSON type of each primitive; elements typed CDSHooksElement carry their children inline, and maps
(prefetch) are elements of type Base with `key` and `value` children. The JSON names of the spec use
snake_case where the logical model spells camelCase (fhirAuthorization), so both are accepted.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.helpers import EXTERNAL

SHAPES = EXTERNAL / "cdshooks" / "shapes" / "structuredefinitions"
PRIMITIVES = {
    "string": str,
    "markdown": str,
    "code": str,
    "uuid": str,
    "url": str,
    "uri": str,
    "id": str,
    "boolean": bool,
    "integer": int,
}
OBJECTS = {"Coding", "Resource", "Bundle", "Extension", "CodeableConcept"}


def _load() -> dict[str, dict[str, Any]]:
    return {
        sd["url"]: sd for sd in (json.loads(p.read_text("utf-8")) for p in SHAPES.glob("structuredefinition-*.json"))
    }


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class Shapes:
    """Validate JSON values against the shapes, collecting problems as `path: message`."""

    def __init__(self) -> None:
        self.sds = _load()

    def validate(self, value: Any, shape: str, overrides: dict[str, str] | None = None) -> list[str]:
        """Problems of `value` against the shape named by its last URL segment (e.g. CDSHooksResponse)."""
        sd = self.sds[f"http://cds-hooks.hl7.org/StructureDefinition/{shape}"]
        elements = sd["differential"]["element"]
        problems: list[str] = []
        self._object(value, elements[0]["path"], elements, problems, overrides or {})
        return problems

    def _children(self, path: str, elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        depth = path.count(".") + 1
        return [e for e in elements if e["path"].startswith(path + ".") and e["path"].count(".") == depth]

    def _object(
        self, value: Any, path: str, elements: list[dict[str, Any]], problems: list[str], overrides: dict[str, str]
    ) -> None:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object")
            return
        for element in self._children(path, elements):
            name = element["path"].rsplit(".", 1)[1]
            key = name if name in value else _snake(name) if _snake(name) in value else None
            where = f"{path}.{name}"
            if key is None:
                if int(element.get("min", 0)) >= 1:
                    problems.append(f"{where}: required")
                continue
            self._element(value[key], where, element, elements, problems, overrides)

    def _element(
        self,
        value: Any,
        where: str,
        element: dict[str, Any],
        elements: list[dict[str, Any]],
        problems: list[str],
        overrides: dict[str, str],
    ) -> None:
        codes = [t.get("code", "") for t in element.get("type", [])]
        code = overrides.get(where, codes[0] if codes else "")
        if code == "Base":  # a map: prefetch {key: value}
            if not isinstance(value, dict):
                problems.append(f"{where}: expected an object of key/value pairs")
            return
        many = element.get("max") == "*"
        items = value if many else [value]
        if many and not isinstance(value, list):
            problems.append(f"{where}: expected an array")
            return
        if not many and isinstance(value, list):
            problems.append(f"{where}: expected one value, not an array")
            return
        for i, item in enumerate(items):
            at = f"{where}[{i}]" if many else where
            if code in PRIMITIVES:
                expected = PRIMITIVES[code]
                if not isinstance(item, expected) or (expected is int and isinstance(item, bool)):
                    problems.append(f"{at}: expected {code}")
            elif code in OBJECTS:
                if not isinstance(item, dict):
                    problems.append(f"{at}: expected an object ({code})")
            elif code.endswith("/CDSHooksElement"):
                self._object(item, element["path"], elements, problems, overrides)
            elif code.startswith("http://cds-hooks.hl7.org/StructureDefinition/"):
                problems += [f"{at}.{p}" for p in self.validate(item, code.rsplit("/", 1)[1])]
