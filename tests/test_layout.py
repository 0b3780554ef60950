"""The fixed top-level layout and the direction of dependencies, checked on the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TOP_LEVEL = [
    "dags",
    "plugins",
    "include",
    "webhook_gateway",
    "sandbox",
    "devstack",
    "tests",
    "bench",
    "docs",
    "requirements.txt",
    "pyproject.toml",
    "docker-compose.yaml",
    ".env.example",
    "Makefile",
    "README.md",
    ".ci/run",
]


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
    f.write_text(
        "import os.path\nfrom a.b import c\nfrom . import rel\n"
        "def f():\n    import airflow.sdk\n    from sandbox import x\n"
    )
    assert imported_roots(f) == {"os", "a", "airflow", "sandbox"}


def test_include_imports_airflow_only_in_hooks() -> None:
    files = python_files("include", exclude="airflow_provider")
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
    product = python_files("include") + python_files("webhook_gateway") + python_files("dags") + python_files("plugins")
    assert offenders(product, {"devstack"}) == {}


# -- the shape of include/ (issue 13) ------------------------------------------------------------
def include_imports(path: Path) -> set[str]:
    """The include modules a file imports (`include.x.y`), anywhere in it, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "include")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] == "include":
                out.add(module)
                out.update(f"{module}.{a.name}" for a in node.names)  # `from include import hub`
    return out


def unit_of(module: str) -> str | None:
    """include.hub.links → 'hub'; include.settings → 'settings'; 'include' alone → None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def existing_units() -> set[str]:
    base = ROOT / "include"
    return {p.name for p in base.iterdir() if p.is_dir() and (p / "__init__.py").exists()} | {
        p.stem for p in base.glob("*.py") if p.stem != "__init__"
    }


def unit_graph() -> dict[str, set[str]]:
    units = existing_units()
    graph: dict[str, set[str]] = {u: set() for u in units}
    for f in python_files("include"):
        me = unit_of(".".join(f.relative_to(ROOT).with_suffix("").parts))
        for target in include_imports(f):
            other = unit_of(target)
            if me and other in units and other != me:
                graph[me].add(other)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_between_the_parts_of_include() -> None:
    graph = unit_graph()
    assert {"calendar_engine", "calendar_sync", "hub", "parties", "advoware", "google_calendar"} <= set(graph)
    assert find_cycle(graph) is None


def test_the_sync_engine_imports_nothing_of_ours_but_itself() -> None:
    """include/calendar_engine decides; it reads no client, no hub, no settings (pure, testable alone)."""
    bad = {
        str(f.relative_to(ROOT)): {m for m in include_imports(f) if unit_of(m) != "calendar_engine"}
        for f in python_files("include/calendar_engine")
    }
    assert {f: m for f, m in bad.items() if m} == {}


def test_clients_never_touch_the_hub_or_the_orchestration() -> None:
    """The clients return data; joining clients, engine and hub is the orchestration's job."""
    clients = (
        python_files("include/advoware") + python_files("include/google_calendar") + python_files("include/espocrm")
    )
    bad = {
        str(f.relative_to(ROOT)): {
            m for m in include_imports(f) if unit_of(m) in ("hub", "calendar_sync", "parties", "calendar_engine")
        }
        for f in clients
    }
    assert {f: m for f, m in bad.items() if m} == {}


def sql_strings(path: Path) -> list[str]:
    """String literals that are SQL statements (DML/DDL keywords in capitals, as this project writes SQL)."""
    import re

    statement = re.compile(
        r"^\s*(SELECT\b.*\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
        r"CREATE\s+(TABLE|INDEX|DATABASE)|ALTER\s+TABLE|DROP\s+(TABLE|DATABASE)|TRUNCATE)\b",
        re.DOTALL,
    )
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and statement.search(node.value):
            found.append(node.value.strip()[:60])
        elif isinstance(node, ast.JoinedStr):
            # a placeholder stands for each {expression} (a table name, a column list)
            text = "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
            if statement.search(text):
                found.append(text.strip()[:60])
    return found


def test_sql_strings_finds_sql(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        'a = "SELECT x FROM t"\nb = f"UPDATE {t} SET a = 1"\nc = "select the best"\nd = "DELETE FROM t WHERE x"\n'
    )
    assert sql_strings(f) == ["SELECT x FROM t", "UPDATE x SET a = 1", "DELETE FROM t WHERE x"]


def test_the_hub_is_the_only_place_with_sql() -> None:
    product = (
        python_files("include", exclude="hub")
        + python_files("dags")
        + python_files("plugins")
        + python_files("webhook_gateway")
    )
    found = {str(f.relative_to(ROOT)): s for f in product if (s := sql_strings(f))}
    assert found == {}
    assert any(sql_strings(f) for f in python_files("include/hub")), "the scanner sees the hub's SQL"


def test_no_import_cycle_between_modules_of_include() -> None:
    """Also inside a part (a function-local import that hides a loop counts)."""
    modules = {
        ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
        for f in python_files("include")
    }
    graph = {m: {t for t in include_imports(f) if t in modules and t != m} for m, f in modules.items()}
    assert len(graph) > 40
    assert find_cycle(graph) is None


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
            name = (
                node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else node.name
            )
            if name.startswith("parsedate"):
                found.append(f"line {getattr(node, 'lineno', '?')}: {name}")
    return found


def test_retry_after_reads_are_found(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        '"""Honours `Retry-After` (prose is fine)."""\nimport email.utils\n'
        'def _retry_after(r):\n    return r.headers.get("Retry-After")\n'
        'def g(h):\n    return email.utils.parsedate_to_datetime(h[b"retry-after"])\n'
    )
    assert len(retry_after_reads(f)) == 4


def test_tenacity_is_imported_only_by_include_retry() -> None:
    """Every HTTP client retries through include/retry.py; none builds its own tenacity loop."""
    files = [p for folder in CODE_FOLDERS for p in python_files(folder) if p != RETRY_MODULE]
    assert files and "tenacity" in imported_roots(RETRY_MODULE)
    assert offenders(files, {"tenacity"}) == {}


def test_retry_after_is_read_in_include_only_by_include_retry() -> None:
    """One Retry-After parser. (The gateway sends and passes on Retry-After headers: webhook_gateway/.)"""
    assert retry_after_reads(RETRY_MODULE)
    found = {
        str(p.relative_to(ROOT)): reads
        for p in python_files("include")
        if p != RETRY_MODULE and (reads := retry_after_reads(p))
    }
    assert found == {}
