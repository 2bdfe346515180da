"""Validate the deploy manifests offline (``make validate-deploy``, run by ``make lint``).

- Every Kubernetes object in deploy/k8s/ against the Kubernetes OpenAPI schemas bundled by the
  PyPI package kubernetes-validate (strict: an unknown field is an error), for the oldest and the
  newest Kubernetes version Hirfa supports.
- deploy/k8s/kustomization.yaml lists every manifest in the directory, and nothing missing.
- deploy/docker-compose.yml against the compose-spec JSON schema vendored by the PyPI package
  check-jsonschema (its ``vendor.compose-spec`` builtin schema).

No network is needed: both packages ship their schemas. Exit status 1 and one line per problem
when anything is wrong.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

DEPLOY_DIR = Path(__file__).resolve().parent
K8S_DIR = DEPLOY_DIR / "k8s"
COMPOSE_FILE = DEPLOY_DIR / "docker-compose.yml"
KUSTOMIZATION = "kustomization.yaml"
# The oldest Kubernetes Hirfa supports, and the newest the bundled schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of ``path`` (empty documents, e.g. a leading comment, skipped)."""
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document is not None]


def manifest_files(k8s_dir: Path = K8S_DIR) -> list[Path]:
    return sorted(path for path in k8s_dir.glob("*.yaml") if path.name != KUSTOMIZATION)


def kubernetes_errors(paths: Iterable[Path], versions: Iterable[str] = KUBERNETES_VERSIONS) -> list[str]:
    """One line per object of ``paths`` that does not match its Kubernetes schema."""
    errors = []
    versions = tuple(versions)
    for path in paths:
        try:
            documents = load_documents(path)
        except yaml.YAMLError as exc:
            errors.append(f"{path.name}: not YAML: {exc}")
            continue
        for document in documents:
            name = f"{document.get('kind', '?')}/{(document.get('metadata') or {}).get('name', '?')}"
            for version in versions:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    where = "/".join(str(part) for part in exc.path) or "(top)"
                    errors.append(f"{path.name}: {name} (Kubernetes {version}): {where}: {exc.message}")
                except (kubernetes_validate.SchemaNotFoundError, KeyError, TypeError) as exc:
                    errors.append(f"{path.name}: {name} (Kubernetes {version}): no schema: {exc}")
    return errors


def kustomization_errors(k8s_dir: Path = K8S_DIR) -> list[str]:
    """The kustomization must list every manifest of the directory, and only files that exist."""
    kustomization = load_documents(k8s_dir / KUSTOMIZATION)[0]
    listed = list(kustomization.get("resources") or [])
    errors = [
        f"{KUSTOMIZATION}: {name} is listed twice" for name in sorted(set(listed)) if listed.count(name) > 1
    ]
    present = {path.name for path in manifest_files(k8s_dir)}
    errors += [
        f"{KUSTOMIZATION}: lists {name}, which does not exist" for name in sorted(set(listed) - present)
    ]
    errors += [f"{KUSTOMIZATION}: does not list {name}" for name in sorted(present - set(listed))]
    return errors


def compose_schema() -> dict[str, Any]:
    """The compose-spec schema as check-jsonschema vendors it (see its vendor/README.md)."""
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema_file.read_text(encoding="utf-8"))


def compose_errors(path: Path = COMPOSE_FILE) -> list[str]:
    """One line per place where the compose file breaks the compose specification."""
    try:
        documents = load_documents(path)
    except yaml.YAMLError as exc:
        return [f"{path.name}: not YAML: {exc}"]
    if len(documents) != 1:
        return [f"{path.name}: one YAML document expected, found {len(documents)}"]
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{path.name}: {'/'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(documents[0]), key=lambda error: list(error.absolute_path))
    ]


def all_errors(k8s_dir: Path = K8S_DIR, compose_file: Path = COMPOSE_FILE) -> list[str]:
    return [
        *kubernetes_errors(manifest_files(k8s_dir)),
        *kustomization_errors(k8s_dir),
        *compose_errors(compose_file),
    ]


def main() -> int:
    errors = all_errors()
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"deploy manifests: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    count = sum(len(load_documents(path)) for path in manifest_files())
    print(
        f"deploy manifests: {count} Kubernetes objects valid for Kubernetes {', '.join(KUBERNETES_VERSIONS)}; "
        f"kustomization complete; {COMPOSE_FILE.name} matches the compose specification"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
