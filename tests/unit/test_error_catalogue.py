"""The catalogue of problem codes is the code's: every code the services can answer is in it with
the status it is answered with, nothing in it is answered by nobody, and docs/errors.md is what the
catalogue generates."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import services.accounts
import services.onboarding
import services.payments
import shared
from services.docs import ERRORS_PAGE, docs, load_catalogue, render_errors_page
from shared.config import PROJECT_ROOT
from shared.errors import HirfaError
from shared.problem_codes import catalogued

PACKAGES = (shared, services.onboarding, services.payments, services.accounts)

# Exceptions that carry a rule's code which the service layer answers as a problem of the given
# status (422: a ValidationFailed with the rule's code; 409: a Conflict), and where in their
# arguments the code is.
RULE_ERRORS = {
    "BankIdentifierError": (0, 422),
    "DocumentRuleError": (0, 422),
    "EndpointUrlError": (0, 422),
    "IdentityRuleError": (1, 422),
    "IceRuleError": ("self.code", 422),
    "BalanceRuleViolation": (0, 409),
    "StaffRuleError": ("code", 422),
    # Payments: a capture or a void the gateway refused.
    "_refusal": (2, 409),
}


@pytest.fixture(scope="module")
def codes_in_the_code() -> dict[str, set[int]]:
    """Every problem code the code can raise, with the statuses it is raised with."""
    problem_classes = {cls.__name__: cls for cls in _problem_classes()}
    found: dict[str, set[int]] = {}
    for cls in problem_classes.values():
        found.setdefault(cls.code, set()).add(cls.status)
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _string_constants(tree)
        for node in ast.walk(tree):
            for code, status in _codes_raised(node, problem_classes, constants):
                found.setdefault(code, set()).add(status)
    return found


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """A module's ``NAME = "text"`` constants (a code may be passed by its name)."""
    return {
        target.id: statement.value.value
        for statement in tree.body
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
        for target in statement.targets
        if isinstance(target, ast.Name) and isinstance(statement.value.value, str)
    }


def _problem_classes() -> Iterator[type[HirfaError]]:
    for package in PACKAGES:
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    pending = [HirfaError]
    while pending:
        cls = pending.pop()
        yield cls
        pending.extend(cls.__subclasses__())


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        for directory in package.__path__:
            yield from (path for path in Path(directory).rglob("*.py") if "migrations" not in path.parts)


def _name(call: ast.Call) -> str | None:
    function = call.func
    return function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)


def _codes_raised(
    node: ast.AST, problem_classes: dict[str, type[HirfaError]], constants: dict[str, str]
) -> Iterator[tuple[str, int]]:
    def _text(value: ast.AST | None) -> str | None:
        if isinstance(value, ast.Name):
            return constants.get(value.id)
        return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None

    # A rule error whose constructor sets its own code: ``self.code = "…"``.
    if isinstance(node, ast.ClassDef) and RULE_ERRORS.get(node.name, ("",))[0] == "self.code":
        for statement in ast.walk(node):
            if isinstance(statement, ast.Assign) and ast.unparse(statement.targets[0]) == "self.code":
                if _text(statement.value):
                    yield _text(statement.value), RULE_ERRORS[node.name][1]  # type: ignore[misc]
    if isinstance(node, ast.Call):
        name = _name(node)
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        if name in problem_classes and _text(keywords.get("code")):
            yield _text(keywords["code"]), problem_classes[name].status  # type: ignore[misc]
        if name in RULE_ERRORS:
            where, status = RULE_ERRORS[name]
            argument = keywords.get(where) if where == "code" else None
            if isinstance(where, int) and len(node.args) > where:
                argument = node.args[where]
            if _text(argument):
                yield _text(argument), status  # type: ignore[misc]
    # A validation problem listing several fields: ``{"param": …, "code": …, "message": …}``.
    if isinstance(node, ast.Dict):
        keys = [_text(key) for key in node.keys]
        if {"param", "code", "message"} <= set(keys):
            code = _text(node.values[keys.index("code")])
            if code:
                yield code, 422


def test_every_code_the_code_raises_is_catalogued_with_its_status(codes_in_the_code):
    load_catalogue()
    wrong = []
    for code, statuses in sorted(codes_in_the_code.items()):
        try:
            entry = catalogued(code)
        except KeyError:
            wrong.append(f"{code} ({', '.join(map(str, sorted(statuses)))}) is not in the catalogue")
            continue
        if code != "internal_error" and statuses != {entry.status}:
            wrong.append(f"{code} is raised as {sorted(statuses)}, catalogued as {entry.status}")
    assert not wrong, "\n".join(wrong)


def test_nothing_in_the_catalogue_is_answered_by_nobody(codes_in_the_code):
    # http_error: Werkzeug's refusals with no problem class of their own (shared.errors).
    stale = {entry.code for entry in load_catalogue()} - set(codes_in_the_code) - {"http_error"}
    assert not stale, f"catalogued but never raised: {sorted(stale)}"


def test_the_committed_error_page_is_the_generated_one():
    committed = ERRORS_PAGE.read_text(encoding="utf-8")
    assert committed == render_errors_page(load_catalogue()), "docs/errors.md is out of date: run `make docs`"


def test_the_page_names_every_code_with_its_status_meaning_and_action():
    page = render_errors_page(load_catalogue())
    for entry in load_catalogue():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{entry.code}` |"))
        assert entry.meaning.split("`")[0][:40] in row and entry.action.split("`")[0][:30] in row
    assert "## 409 Conflict" in page and "| `idempotency_key_reuse` |" in page


def test_the_docs_command_writes_the_page_and_checks_it(tmp_path):
    runner = CliRunner()
    page = tmp_path / "errors.md"
    assert runner.invoke(docs, ["errors", "--check", "--output", str(page)]).exit_code == 1
    assert runner.invoke(docs, ["errors", "--output", str(page)]).exit_code == 0
    assert page.read_text(encoding="utf-8") == ERRORS_PAGE.read_text(encoding="utf-8")
    assert runner.invoke(docs, ["errors", "--check", "--output", str(page)]).exit_code == 0


def test_the_readme_links_the_error_catalogue():
    assert "(docs/errors.md)" in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
