"""The fixed top-level layout and the direction of dependencies, checked on the source with ast.

`LAYERS` is the one rule for the whole tree: for every top-level folder and every part of include/,
which others it may import. docs/architecture.md's table of the layers is generated from it
(`python -m tests.layout_doc`), and a test here fails when the doc is not up to date, so the two cannot
drift. Every import counts, also one inside a function or under `TYPE_CHECKING`: a hidden import is
still an arrow a reader has to know about.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE_DOC = ROOT / "docs" / "architecture.md"

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
CODE_FOLDERS = ["dags", "plugins", "include", "webhook_gateway", "sandbox", "devstack", "tests", "bench"]

# -- the parts, each named once (renaming a folder is one line here) ------------------------------
DAGS = "dags"
PLUGINS = "plugins"
GATEWAY = "webhook_gateway"
SANDBOX = "sandbox"
DEVSTACK = "devstack"
BENCH = "bench"
TESTS = "tests"
PROVIDER = "include/airflow_provider"
CLI = "include/cli.py"
CALENDAR_SYNC = "include/calendar_sync"
CALENDAR_PUSH = "include/calendar_push"
PARTIES = "include/parties"
STATUS = "include/status"
CHECKS = "include/checks"
DEAD_LETTER_REPLAY = "include/dead_letter_replay.py"
SAFETY_STOP = "include/safety_stop.py"
HUB = "include/hub"
QUEUE = "include/queue"
ENGINE = "include/calendar_engine"
ADVOWARE = "include/advoware"
GOOGLE = "include/google_calendar"
ESPOCRM = "include/espocrm"
AIRFLOW_API = "include/airflow_api.py"
AIRFLOW_API_ASYNC = "include/airflow_api_async.py"
INCLUDE_PACKAGE = "include/__init__.py"
SETTINGS = "include/settings.py"
RETRY = "include/retry.py"
DAG_IDS = "include/dag_ids.py"
CONN_IDS = "include/conn_ids.py"
ALERTS = "include/alerts.py"
AIRFLOW_ENV = "include/airflow_env.py"
# The one third-party package with a rule: Airflow stays at the edges, so the rest runs and is tested
# without it (the gateway, the CLI, the engine's tests).
AIRFLOW = "airflow"
EVERYTHING = "*"


@dataclass(frozen=True)
class Layer:
    """Parts that may import each other and what `may_import` names: other layers, or single parts."""

    name: str
    parts: tuple[str, ...]
    may_import: tuple[str, ...]
    does: str


ORCHESTRATION = "orchestration"
CLIENTS = "clients"
FOUNDATION = "foundation"
INCLUDE_BELOW_PROVIDER = (ORCHESTRATION, CLIENTS, HUB, QUEUE, ENGINE, FOUNDATION)
INCLUDE_ALL = (CLI, PROVIDER, *INCLUDE_BELOW_PROVIDER)

LAYERS: tuple[Layer, ...] = (
    Layer(
        DAGS,
        (DAGS,),
        (PROVIDER, DAG_IDS, AIRFLOW),
        "thin: schedule, retries, task ids, one call into the Airflow adapters per task",
    ),
    Layer(
        PLUGINS,
        (PLUGINS,),
        (PROVIDER, ORCHESTRATION, FOUNDATION, AIRFLOW),
        "the status view mounted in Airflow's web server (`include/status/` behind Airflow's login)",
    ),
    Layer(
        GATEWAY,
        (GATEWAY,),
        (ORCHESTRATION, CLIENTS, HUB, QUEUE, FOUNDATION),
        "the network edge: webhooks, proxy, trigger, dead letters over HTTP, metrics; never Airflow",
    ),
    Layer(CLI, (CLI,), INCLUDE_ALL[1:], "`kanzlei-sync`, the operator's commands"),
    Layer(
        PROVIDER,
        (PROVIDER,),
        (*INCLUDE_BELOW_PROVIDER, AIRFLOW),
        "the only code of the product that imports Airflow, laid out as a provider: `hooks/` (connection →"
        " ready client through `get_conn()`, merged over the environment one way in `hooks/base.py`),"
        " `sensors/` and `triggers/` (the party wait), `notifiers/` (alert mails), `executors/` (the"
        " preloading executor, Celery configuration, worker names), `tasks/` (what each DAG task calls),"
        " `deployment/` (pools, users), `get_provider_info.py`",
    ),
    Layer(
        ORCHESTRATION,
        (CALENDAR_SYNC, CALENDAR_PUSH, PARTIES, CHECKS, STATUS, DEAD_LETTER_REPLAY, SAFETY_STOP),
        (CLIENTS, HUB, QUEUE, ENGINE, FOUNDATION),
        "reads, plans, applies, records: joins clients, engine, hub and queue; the service checks and the"
        " status view read through the same parts",
    ),
    Layer(
        HUB,
        (HUB,),
        (ENGINE,),
        "every SQL statement, split by what it stores (calendars, links, parking, intents, plans, runs,"
        " parties, audit, dead letters, status); `Hub` is the unit of work (a connection per thread, a"
        " transaction per block); it stores the engine's data types (`HubLink`, `Plan`)",
    ),
    Layer(QUEUE, (QUEUE,), (SETTINGS,), "the party queue in Redis (Lua scripts: enqueue, claim, ack, nack)"),
    Layer(
        CLIENTS,
        (ADVOWARE, GOOGLE, ESPOCRM, AIRFLOW_API, AIRFLOW_API_ASYNC),
        (FOUNDATION,),
        "talk HTTP, return data, raise typed errors; never touch the hub, the engine or the orchestration",
    ),
    Layer(
        ENGINE,
        (ENGINE,),
        (),
        "decides: mapping both ways, fingerprints, RRULE series, the planner's decision table"
        " (`planner.decide`, yielding the action classes), series exceptions (`series_exceptions.py` the"
        " policy, `series_planning.py` its actions), the plan (`plan.py`: one frozen dataclass per action"
        " kind, its `ActionKind` as a ClassVar; stored as versioned JSON), Google's marker (`marker.py`,"
        " the one definition); pure",
    ),
    Layer(
        FOUNDATION,
        (INCLUDE_PACKAGE, SETTINGS, RETRY, DAG_IDS, CONN_IDS, ALERTS, AIRFLOW_ENV),
        (),
        "settings (environment, then `.env`), the one retry policy, the DAG ids and connection ids, the alerts"
        " as plain data,"
        " the settings as Airflow connections and variables",
    ),
    Layer(
        SANDBOX,
        (SANDBOX,),
        (SETTINGS, ADVOWARE),
        "stand-ins for Advoware, Google and EspoCRM (tests, demo, benches); the Advoware stand-in stores the"
        " party fields of `include/advoware/beteiligte.py`, the list the sync owns",
    ),
    Layer(
        DEVSTACK,
        (DEVSTACK,),
        (*INCLUDE_ALL, GATEWAY, SANDBOX, AIRFLOW),
        "`make demo`, `make scale-demo`, the scenario, the compose check (subprocesses, seeding, psutil)",
    ),
    Layer(BENCH, (BENCH,), (*INCLUDE_ALL, GATEWAY, SANDBOX, AIRFLOW), "the benchmarks (docs/benchmarks.md)"),
    Layer(TESTS, (TESTS,), (EVERYTHING,), "the tests"),
    Layer(AIRFLOW, (AIRFLOW,), (), "Apache Airflow (third-party: every other package is free to import)"),
)


# -- the checker ----------------------------------------------------------------------------------
def python_files(folder: str, *, exclude: str | None = None, root: Path = ROOT) -> list[Path]:
    base = root / folder
    files = [p for p in base.rglob("*.py") if "__pycache__" not in p.parts]
    if exclude:
        files = [p for p in files if not p.is_relative_to(base / exclude)]
    return sorted(files)


def module_name(path: Path, root: Path = ROOT) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def tree_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of ours by its dotted name (`include.hub.links`, `dags.beteiligte_sync`)."""
    return {module_name(p, root): p for folder in CODE_FOLDERS for p in python_files(folder, root=root)}


def imported_names(path: Path, root: Path = ROOT) -> set[str]:
    """Every dotted name a file imports, anywhere in it, relative imports resolved; `from a import b`
    yields `a.b` (b may be a module or a name in a)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path, root).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.update(f"{module}.{a.name}" if module else a.name for a in node.names)
    return out


def imported_roots(path: Path) -> set[str]:
    """Top-level package names a file imports, anywhere in it (function-local imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def offenders(files: list[Path], forbidden: set[str]) -> dict[str, set[str]]:
    """Files that import any of these top-level (third-party) packages, with which."""
    out = {}
    for f in files:
        bad = imported_roots(f) & forbidden
        if bad:
            out[str(f.relative_to(ROOT))] = bad
    return out


def ours(name: str, modules: Iterable[str]) -> str | None:
    """The module of ours a dotted name lands in (the longest known prefix), None for third-party."""
    known = set(modules)
    if name.split(".")[0] not in CODE_FOLDERS:
        return None
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def part_of(module: str, root: Path = ROOT) -> str:
    """include.hub.links → 'include/hub'; include.settings → 'include/settings.py'; devstack.x → 'devstack'."""
    names = module.split(".")
    if names[0] != "include":
        return names[0]
    if len(names) == 1:
        return INCLUDE_PACKAGE
    return f"include/{names[1]}" if (root / "include" / names[1]).is_dir() else f"include/{names[1]}.py"


def allowed_parts(layer: Layer, layers: tuple[Layer, ...] = LAYERS) -> set[str]:
    by_name = {other.name: other for other in layers}
    allowed = set(layer.parts)
    for name in layer.may_import:
        if name == EVERYTHING:
            allowed.update(p for other in layers for p in other.parts)
        elif name in by_name:
            allowed.update(by_name[name].parts)
        else:
            allowed.add(name)
    return allowed


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


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component: every independent loop is reported, each once."""
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    components = {frozenset(n for n in graph if n in reach[m] and m in reach[n]) for m in graph if m in reach[m]}
    cycles = []
    for component in components:
        sub = {n: graph[n] & component for n in component}
        if cycle := find_cycle(sub):
            cycles.append(cycle)
    return sorted(cycles)


def layering_violations(root: Path = ROOT, layers: tuple[Layer, ...] = LAYERS) -> dict[str, set[str]]:
    """Each broken rule ('a part in no layer', 'A -> B' not allowed, 'cycle: ...') with the files behind it."""
    modules = tree_modules(root)
    layer_of = {part: layer for layer in layers for part in layer.parts}
    found: dict[str, set[str]] = {}
    graph: dict[str, set[str]] = {}
    part_graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        me = part_of(module, root)
        where = str(path.relative_to(root))
        graph[module] = set()
        if me not in layer_of:
            found.setdefault(f"{me}: in no layer of the table", set()).add(where)
            allowed = None
        else:
            allowed = allowed_parts(layer_of[me], layers)
        for name in imported_names(path, root):
            target = ours(name, modules)
            if target is None:
                other = AIRFLOW if name.split(".")[0] == AIRFLOW else None
            else:
                if target in modules and target != module:
                    graph[module].add(target)
                other = part_of(target, root)
                if other != me:
                    part_graph.setdefault(me, set()).add(other)
            # a part in no layer is reported once above, not at every import of it
            if other and allowed is not None and other in layer_of and other not in allowed:
                found.setdefault(f"{me} -> {other}", set()).add(where)
    for cycle in find_cycles(part_graph):
        found[f"cycle between parts: {' -> '.join(cycle)}"] = set(cycle)
    for cycle in find_cycles(graph):
        found[f"cycle: {' -> '.join(cycle)}"] = {str(modules[m].relative_to(root)) for m in cycle}
    return found


# -- the layout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", TOP_LEVEL)
def test_top_level_entry_exists(entry: str) -> None:
    assert (ROOT / entry).exists(), f"{entry} is part of the fixed layout"


def test_ci_run_is_executable() -> None:
    assert (ROOT / ".ci/run").stat().st_mode & 0o111


# -- the table's own promises (each change to them is a decision, not a side effect) --------------
def layer(name: str) -> Layer:
    return next(candidate for candidate in LAYERS if candidate.name == name)


PRODUCT = (DAGS, PLUGINS, GATEWAY, *INCLUDE_ALL)


def test_the_table_names_every_part_once_and_only_layers_or_parts() -> None:
    parts = [p for candidate in LAYERS for p in candidate.parts]
    assert len(parts) == len(set(parts))
    names = {candidate.name for candidate in LAYERS}
    assert len(names) == len(LAYERS)
    for candidate in LAYERS:
        assert set(candidate.may_import) <= names | set(parts) | {EVERYTHING}, candidate.name


def test_the_table_has_no_cycle() -> None:
    """Between layers the arrows point one way (inside a layer the module check below holds)."""
    graph = {c.name: {n for n in c.may_import if n != EVERYTHING and n != c.name} for c in LAYERS if c.name != TESTS}
    by_part = {p: c.name for c in LAYERS for p in c.parts}
    graph = {name: {by_part.get(n, n) for n in targets} - {name} for name, targets in graph.items()}
    assert find_cycle(graph) is None


def test_only_the_edges_import_airflow() -> None:
    assert {c.name for c in LAYERS if AIRFLOW in allowed_parts(c)} == {
        PROVIDER,
        DAGS,
        PLUGINS,
        DEVSTACK,
        BENCH,
        TESTS,
        AIRFLOW,
    }


def test_the_sync_engine_may_import_nothing_of_ours_but_itself() -> None:
    """include/calendar_engine decides; it reads no client, no hub, no settings (pure, testable alone)."""
    assert allowed_parts(layer(ENGINE)) == {ENGINE}


def test_clients_never_touch_the_engine_the_hub_or_the_orchestration() -> None:
    """The clients return data; joining clients, engine and hub is the orchestration's job."""
    forbidden = {ENGINE, HUB, QUEUE, PROVIDER, CLI, *layer(ORCHESTRATION).parts}
    assert allowed_parts(layer(CLIENTS)) & forbidden == set()


def test_the_product_never_imports_the_sandbox_the_dev_stack_or_the_benches() -> None:
    """devstack/ (make demo, the scenario) and sandbox/ are development tooling, not part of what runs."""
    for name in PRODUCT:
        assert allowed_parts(layer(name)) & {SANDBOX, DEVSTACK, BENCH, TESTS} == set(), name


def test_include_never_imports_the_gateway_the_dags_or_the_plugins() -> None:
    for name in INCLUDE_ALL:
        assert allowed_parts(layer(name)) & {GATEWAY, DAGS, PLUGINS} == set(), name


def test_nothing_but_the_tests_imports_the_tests() -> None:
    assert {c.name for c in LAYERS if TESTS in allowed_parts(c)} == {TESTS}


# -- the tree obeys the table ---------------------------------------------------------------------
def test_the_tree_obeys_the_table() -> None:
    found = layering_violations()
    assert {rule: sorted(files) for rule, files in found.items()} == {}


def test_the_checker_sees_the_whole_tree() -> None:
    modules = tree_modules()
    assert len(modules) > 250
    assert {part_of(m) for m in modules} >= {DAGS, PLUGINS, GATEWAY, SANDBOX, DEVSTACK, BENCH, TESTS, ENGINE, HUB}


# -- the checker, on planted trees ----------------------------------------------------------------
def plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for folder in path.relative_to(root).parents:
            # a package needs its __init__; dags/, plugins/ and bench/ are plain folders of files
            if folder.parts and folder.parts[0] not in ("dags", "plugins", "bench"):
                (root / folder / "__init__.py").touch()
    return root


def test_imported_roots_sees_every_import_form(tmp_path: Path) -> None:
    # The checks below are only as good as this parser: prove it finds nested and dotted imports.
    f = tmp_path / "m.py"
    f.write_text(
        "import os.path\nfrom a.b import c\nfrom . import rel\n"
        "def f():\n    import airflow.sdk\n    from sandbox import x\n"
    )
    assert imported_roots(f) == {"os", "a", "airflow", "sandbox"}


def test_imported_names_resolves_relative_and_nested_imports(tmp_path: Path) -> None:
    plant(
        tmp_path,
        {
            "include/hub/links.py": "from . import db\nfrom .db import Hub\n"
            "def f():\n    from ..calendar_engine import plan\n",
            "include/hub/__init__.py": "from .links import x\n",
        },
    )
    assert imported_names(tmp_path / "include/hub/links.py", tmp_path) == {
        "include.hub.db",
        "include.hub.db.Hub",
        "include.calendar_engine.plan",
    }
    assert imported_names(tmp_path / "include/hub/__init__.py", tmp_path) == {"include.hub.links.x"}


def test_part_of_names_folders_and_single_modules(tmp_path: Path) -> None:
    plant(tmp_path, {"include/hub/db.py": "", "include/settings.py": ""})
    assert part_of("include.hub.db", tmp_path) == "include/hub"
    assert part_of("include.settings", tmp_path) == "include/settings.py"
    assert part_of("include", tmp_path) == INCLUDE_PACKAGE
    assert part_of("webhook_gateway.app", tmp_path) == "webhook_gateway"


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_find_cycles_finds_each_loop_once() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set(), "x": {"y"}, "y": {"z"}, "z": {"x"}}
    assert find_cycles(graph) == [["a", "b", "a"], ["x", "y", "z", "x"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_checker_reports_a_forbidden_import_anywhere(tmp_path: Path) -> None:
    plant(
        tmp_path,
        {
            "include/calendar_engine/plan.py": "def f():\n    from include.hub import db\n",
            "include/hub/db.py": "from include.calendar_engine import plan\n",
            "webhook_gateway/app.py": "import airflow.sdk\n",
            "sandbox/app.py": "from include.settings import get_settings\nfrom devstack import stack\n",
            "devstack/stack.py": "from webhook_gateway import app\n",
            "include/settings.py": "",
        },
    )
    found = layering_violations(tmp_path)
    assert set(found) == {
        "include/calendar_engine -> include/hub",
        "webhook_gateway -> airflow",
        "sandbox -> devstack",
        "cycle: include.calendar_engine.plan -> include.hub.db -> include.calendar_engine.plan",
        "cycle between parts: include/calendar_engine -> include/hub -> include/calendar_engine",
    }
    assert found["include/calendar_engine -> include/hub"] == {"include/calendar_engine/plan.py"}


def test_the_checker_reports_a_cycle_anywhere(tmp_path: Path) -> None:
    plant(
        tmp_path,
        {
            "bench/a.py": "from bench.b import x\n",
            "bench/b.py": "def x():\n    from bench import a\n",
            "devstack/one.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from devstack.two import T\n",
            "devstack/two.py": "from devstack import one\n",
            "tests/helpers.py": "from tests import test_x\n",
            "tests/test_x.py": "from tests.helpers import y\n",
        },
    )
    assert set(layering_violations(tmp_path)) == {
        "cycle: bench.a -> bench.b -> bench.a",
        "cycle: devstack.one -> devstack.two -> devstack.one",
        "cycle: tests.helpers -> tests.test_x -> tests.helpers",
    }


def test_the_checker_reports_a_folder_in_no_layer(tmp_path: Path) -> None:
    plant(tmp_path, {"include/newpart/x.py": "", "dags/d.py": "from include.newpart import x\n"})
    assert set(layering_violations(tmp_path)) == {"include/newpart: in no layer of the table"}


def test_the_checker_reports_a_planted_cycle_and_import_in_a_copy_of_the_tree(tmp_path: Path) -> None:
    """The real tree, copied, with a loop between two sandbox modules and the engine reading the hub."""
    for folder in CODE_FOLDERS:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    before = set(layering_violations(tmp_path))
    with (tmp_path / "sandbox/common.py").open("a") as f:
        f.write("\n\ndef _planted():\n    from sandbox import runner\n")
    with (tmp_path / "sandbox/runner.py").open("a") as f:
        f.write("\nfrom sandbox import common\n")
    with (tmp_path / "include/calendar_engine/zones.py").open("a") as f:
        f.write("\n\ndef _planted():\n    from include.hub import links\n")
    after = set(layering_violations(tmp_path))
    assert after - before == {
        "include/calendar_engine -> include/hub",
        "cycle between parts: include/calendar_engine -> include/hub -> include/calendar_engine",
        "cycle: sandbox.common -> sandbox.runner -> sandbox.common",
    }


# -- the tests are grouped by what they need ------------------------------------------------------
TEST_GROUPS = ("unit", "integration", "e2e")
# The conftest fixtures that reach PostgreSQL, Redis or a server: a unit test asks for none of them.
SERVICE_FIXTURES = {
    "hub",
    "hub_dsn",
    "redis_db",
    "redis_url",
    "own_redis",
    "advoware_url",
    "google_url",
    "espocrm_url",
    "smtp_sink",
}


def requested_fixtures(path: Path) -> set[str]:
    """The parameter names of every function in a file (test functions and fixtures alike)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {
        a.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
    }


def test_every_test_file_is_in_its_group() -> None:
    """unit/: no database, Redis or server; integration/: the real PostgreSQL and Redis and the
    sandboxes served in-process; e2e/: Airflow, the demo stack, browsers, the compose deployment.
    Shared fixtures and helpers stay in tests/."""
    assert sorted(p.name for p in (ROOT / "tests").glob("test_*.py")) == []
    for group in TEST_GROUPS:
        assert (ROOT / "tests" / group / "__init__.py").exists()
        assert list((ROOT / "tests" / group).glob("test_*.py")), group


def test_unit_tests_ask_for_no_database_redis_or_server() -> None:
    found = {
        str(p.relative_to(ROOT)): used
        for p in python_files("tests/unit")
        if (used := requested_fixtures(p) & SERVICE_FIXTURES)
    }
    assert found == {}


# -- SQL only in the hub -------------------------------------------------------------------------
def sql_strings(path: Path) -> list[str]:
    """String literals that are SQL statements (DML/DDL keywords in capitals, as this project writes SQL)."""
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


# -- retries: one policy, one Retry-After parser (include/retry.py) ------------------------------
RETRY_MODULE = ROOT / "include" / "retry.py"


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


# -- docs/architecture.md's table is generated from LAYERS ----------------------------------------
DOC_BEGIN = "<!-- layers:begin -->"
DOC_END = "<!-- layers:end -->"


def shown(name: str) -> str:
    if name == EVERYTHING:
        return "everything"
    if name == AIRFLOW:
        return "Airflow"
    if name in (ORCHESTRATION, CLIENTS, FOUNDATION):
        return name
    return f"`{name}/`" if not name.endswith(".py") else f"`{name}`"


def layers_table(layers: tuple[Layer, ...] = LAYERS) -> str:
    """The marked section of docs/architecture.md: one row per layer, top to bottom."""
    rows = [
        DOC_BEGIN,
        "<!-- generated by `python -m tests.layout_doc` from LAYERS in tests/unit/test_layout.py: edit there -->",
        "",
        "| layer | does | may import (besides its own parts) |",
        "|---|---|---|",
    ]
    for candidate in layers:
        name = shown(candidate.name)
        if candidate.parts != (candidate.name,):
            name += ": " + ", ".join(shown(p) for p in candidate.parts)
        may = ", ".join(shown(n) for n in candidate.may_import) or "nothing"
        rows.append(f"| {name} | {candidate.does} | {may} |")
    return "\n".join([*rows, "", DOC_END])


def with_layers_table(text: str) -> str:
    start, end = text.index(DOC_BEGIN), text.index(DOC_END) + len(DOC_END)
    return text[:start] + layers_table() + text[end:]


def test_the_architecture_doc_shows_the_table() -> None:
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    assert text.count(DOC_BEGIN) == 1 and text.count(DOC_END) == 1
    assert with_layers_table(text) == text, "run `python -m tests.layout_doc` to update docs/architecture.md"


# -- no pointer out of the repository -------------------------------------------------------------
# Written so that they do not match themselves.
OUTSIDE_REFERENCES = re.compile(r"\bissue #?\d+|\(iss" r"ue |\.\./shared|/work\/", re.IGNORECASE)


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    files = []
    for name in names:
        path = ROOT / name
        if path.is_file() and b"\0" not in path.read_bytes()[:4096]:
            files.append(path)
    return files


def outside_references(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [
        f"line {n}: {line.strip()[:80]}"
        for n, line in enumerate(text.splitlines(), 1)
        if OUTSIDE_REFERENCES.search(line)
    ]


def test_outside_references_are_found(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    # "~" keeps the planted references from matching in this file itself
    planted = "# fixed in Is~sue 11\nx = 1  # see is~sue #4\n# (is~sue of the week)\n# ..~/shared/x\n# /wo~rk/main/x\n"
    f.write_text(planted.replace("~", "") + "# an issue with 3 parts is prose\n# tissue 5\n")
    assert [r.split(":")[0] for r in outside_references(f)] == ["line 1", "line 2", "line 3", "line 4", "line 5"]


def test_no_text_points_outside_the_repository() -> None:
    """Decisions and measurements are told in docs/decisions.md and docs/benchmarks.md, not by an
    issue number of a tracker the reader does not have or a path on one machine."""
    files = tracked_text_files()
    assert len(files) > 100
    found = {str(p.relative_to(ROOT)): refs for p in files if (refs := outside_references(p))}
    assert found == {}
