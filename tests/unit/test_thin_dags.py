"""The DAG files are thin, as README and docs/architecture.md say: they import only the Task SDK, the
provider (include/airflow_provider) and the DAG ids, and each task body is one call into the
provider's `tasks/`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
ALLOWED = ("airflow.sdk", "include.airflow_provider", "include.dag_ids")
TASKS = "include.airflow_provider.tasks"


def imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def task_functions(tree: ast.AST) -> list[ast.FunctionDef]:
    """Functions decorated with `@task` or `@task(...)`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(target, ast.Name) and target.id == "task":
                    out.append(node)
    return out


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_dag_file_imports_only_the_sdk_the_provider_and_the_dag_ids(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ours = {m for m in imported_modules(tree) if m.split(".")[0] not in sys.stdlib_module_names and m != "__future__"}
    assert {m for m in ours if not any(m == a or m.startswith(a + ".") for a in ALLOWED)} == set()


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_each_task_makes_one_call_into_the_provider_tasks(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for fn in task_functions(tree):
        body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        imports, rest = body[:-1], body[-1]
        names = set()
        for stmt in imports:
            assert isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith(TASKS), ast.unparse(stmt)
            names.update(a.asname or a.name for a in stmt.names)
        assert isinstance(rest, ast.Return) and isinstance(rest.value, ast.Call), f"{fn.name}: {ast.unparse(rest)}"
        call = rest.value
        assert isinstance(call.func, ast.Name) and call.func.id in names, f"{fn.name}: {ast.unparse(call)}"
        # its arguments are the task's own (a mapped unit, a phase number), nothing computed here
        assert all(isinstance(a, ast.Name | ast.Constant) for a in call.args), f"{fn.name}: {ast.unparse(call)}"


def test_the_checks_see_the_tasks() -> None:
    found = {fn.name for p in DAG_FILES for fn in task_functions(ast.parse(p.read_text(encoding="utf-8")))}
    assert {"plan_employees", "phase_1_new_advoware", "phase_4_updates", "sync_employee", "drain_queue"} <= found
