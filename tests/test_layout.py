"""The fixed top-level layout and the direction of dependencies, checked on the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TOP_LEVEL = ["dags", "plugins", "include", "webhook_gateway", "sandbox", "devstack", "tests", "bench", "docs",
             "requirements.txt", "pyproject.toml", "docker-compose.yaml", ".env.example", "Makefile",
             "README.md", ".ci/run"]


def imported_roots(path: Path) -> set[str]:
    """Top-level module names a file imports, anywhere in it (function-local imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(folder: str, *, exclude: str | None = None) -> list[Path]:
    base = ROOT / folder
    files = [p for p in base.rglob("*.py") if "__pycache__" not in p.parts]
    if exclude:
        files = [p for p in files if not p.is_relative_to(base / exclude)]
    return sorted(files)


def offenders(files: list[Path], forbidden: set[str]) -> dict[str, set[str]]:
    out = {}
    for f in files:
        bad = imported_roots(f) & forbidden
        if bad:
            out[str(f.relative_to(ROOT))] = bad
    return out


@pytest.mark.parametrize("entry", TOP_LEVEL)
def test_top_level_entry_exists(entry: str) -> None:
    assert (ROOT / entry).exists(), f"{entry} is part of the fixed layout"


def test_ci_run_is_executable() -> None:
    assert (ROOT / ".ci/run").stat().st_mode & 0o111


def test_imported_roots_sees_every_import_form(tmp_path: Path) -> None:
    # The checks below are only as good as this parser: prove it finds nested and dotted imports.
    f = tmp_path / "m.py"
    f.write_text("import os.path\nfrom a.b import c\nfrom . import rel\n"
                 "def f():\n    import airflow.sdk\n    from sandbox import x\n")
    assert imported_roots(f) == {"os", "a", "airflow", "sandbox"}


def test_include_imports_airflow_only_in_hooks() -> None:
    files = python_files("include", exclude="hooks")
    assert files, "include/ has Python files"
    assert offenders(files, {"airflow"}) == {}


def test_include_and_gateway_never_import_the_sandbox() -> None:
    assert offenders(python_files("include") + python_files("webhook_gateway"), {"sandbox"}) == {}


def test_gateway_never_imports_dags_or_airflow() -> None:
    assert offenders(python_files("webhook_gateway"), {"dags", "airflow"}) == {}


def test_include_never_imports_the_gateway_or_dags() -> None:
    assert offenders(python_files("include"), {"webhook_gateway", "dags"}) == {}


def test_the_product_never_imports_the_dev_stack() -> None:
    """devstack/ (make demo, the scenario) is development tooling, not part of what runs in Airflow."""
    product = python_files("include") + python_files("webhook_gateway") + python_files("dags") + python_files(
        "plugins")
    assert offenders(product, {"devstack"}) == {}


# -- retries: one policy, one Retry-After parser (include/retry.py) ------------------------------
RETRY_MODULE = ROOT / "include" / "retry.py"
CODE_FOLDERS = ["dags", "plugins", "include", "webhook_gateway", "sandbox", "devstack", "tests", "bench"]


def retry_after_reads(path: Path) -> list[str]:
    """What in a file reads or parses a Retry-After: the header's name as a string (or bytes) of its
    own, a function named like a Retry-After parser, email.utils' date parsing (HTTP-dates)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if text.strip().lower() == "retry-after":
                found.append(f"line {node.lineno}: {text!r}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "retry_after" in node.name.lower():
            found.append(f"line {node.lineno}: def {node.name}")
        elif isinstance(node, ast.Attribute | ast.Name | ast.alias):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) \
                else node.name
            if name.startswith("parsedate"):
                found.append(f"line {getattr(node, 'lineno', '?')}: {name}")
    return found


def test_retry_after_reads_are_found(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text('"""Honours `Retry-After` (prose is fine)."""\nimport email.utils\n'
                 'def _retry_after(r):\n    return r.headers.get("Retry-After")\n'
                 'def g(h):\n    return email.utils.parsedate_to_datetime(h[b"retry-after"])\n')
    assert len(retry_after_reads(f)) == 4


def test_tenacity_is_imported_only_by_include_retry() -> None:
    """Every HTTP client retries through include/retry.py; none builds its own tenacity loop."""
    files = [p for folder in CODE_FOLDERS for p in python_files(folder) if p != RETRY_MODULE]
    assert files and "tenacity" in imported_roots(RETRY_MODULE)
    assert offenders(files, {"tenacity"}) == {}


def test_retry_after_is_read_in_include_only_by_include_retry() -> None:
    """One Retry-After parser. (The gateway sends and passes on Retry-After headers: webhook_gateway/.)"""
    assert retry_after_reads(RETRY_MODULE)
    found = {str(p.relative_to(ROOT)): reads for p in python_files("include")
             if p != RETRY_MODULE and (reads := retry_after_reads(p))}
    assert found == {}
