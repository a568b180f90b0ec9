"""Regenerate tests/fixtures/github-openapi-subset.json from GitHub's official REST description.

    npm pack @octokit/openapi && tar xzf octokit-openapi-*.tgz
    python -m tests.fakegithub.extract_openapi package/generated/api.github.com.json

Keeps only the operations mergebot calls (success and error responses of each, as JSON schema)
and the component schemas they reference, so the committed file stays small while the fake GitHub
is checked against the real shapes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS = (
    "actions/re-run-job-for-workflow-run",
    "apps/create-installation-access-token",
    "apps/get-authenticated",
    "apps/get-repo-installation",
    "checks/create",
    "checks/list-for-ref",
    "checks/rerequest-run",
    "checks/update",
    "git/get-ref",
    "git/list-matching-refs",
    "git/update-ref",
    "issues/create-comment",
    "issues/list-comments",
    "issues/update-comment",
    "pulls/get",
    "pulls/list",
    "pulls/list-reviews",
    "pulls/update",
    "repos/compare-commits",
    "repos/create-commit-status",
    "repos/get-collaborator-permission-level",
    "repos/get-combined-status-for-ref",
    "repos/get-content",
    "repos/list-commits",
    "users/get-authenticated",
)
OUT = Path(__file__).resolve().parent.parent / "fixtures" / "github-openapi-subset.json"


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


_DOC_KEYS = frozenset({"description", "example", "examples", "title", "externalDocs"})


def _strip_docs(node: Any) -> Any:
    """Drop documentation keywords (they do not change what validates) to keep the file small,
    and turn OpenAPI 3.0's `nullable: true` into JSON Schema (a validator ignores `nullable`)."""
    if isinstance(node, list):
        return [_strip_docs(value) for value in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _strip_docs(schema) for name, schema in value.items()}
        elif key not in _DOC_KEYS and key != "nullable":
            out[key] = _strip_docs(value)
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str) and "$ref" not in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    by_id: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                by_id[op["operationId"]] = (method.upper(), path, op)
    operations: dict[str, Any] = {}
    for op_id in OPERATIONS:
        method, path, op = by_id[op_id]
        responses: dict[str, Any] = {}
        for code, declared in op["responses"].items():
            response = _resolve(spec, declared["$ref"]) if "$ref" in declared else declared
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            responses[code] = _strip_docs(schema)
        operations[op_id] = {"method": method, "path": path, "responses": responses}
    schemas: dict[str, Any] = {}
    pending: set[str] = set()
    _refs(operations, pending)
    while pending:
        ref = pending.pop()
        name = ref.removeprefix("#/components/schemas/")
        if name in schemas:
            continue
        schemas[name] = _strip_docs(_resolve(spec, ref))
        _refs(schemas[name], pending)
    version = spec.get("info", {}).get("version", "")
    return {
        "source": f"@octokit/openapi api.github.com {version}".strip(),
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    OUT.write_text(json.dumps(extract(spec), sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
