"""The task modules are imported once by the process that forks the task processes
(include/airflow_provider/executors/preload.py): the list covers what the DAGs' tasks import, and the executor really
imports them before it forks its workers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from include.airflow_provider.executors.preload import TASK_MODULES

ROOT = Path(__file__).resolve().parents[2]


def task_body_imports() -> set[str]:
    """`include.*` modules the DAG files import inside functions (task bodies), not at parse time."""
    found: set[str] = set()
    for path in (ROOT / "dags").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("include."):
                    found.add(node.module)
    return found


def test_the_preload_list_covers_every_module_a_task_imports() -> None:
    imported = task_body_imports()
    assert "include.airflow_provider.tasks.calendar_sync" in imported  # the parser sees the task bodies
    assert imported - set(TASK_MODULES) == set()


def test_the_preloading_executor_imports_the_task_modules_before_it_forks(tmp_path: Path) -> None:
    """A fresh interpreter: none of the task modules before start(), all of them after it (its
    workers are forked at the end of start(), so they and every task process inherit them)."""
    script = (
        "import json, sys\n"
        "from include.airflow_provider.executors.preload import PreloadingLocalExecutor, TASK_MODULES\n"
        "before = [m for m in TASK_MODULES if m in sys.modules]\n"
        "ex = PreloadingLocalExecutor(parallelism=1)\n"
        "ex.start()\n"
        "after = [m for m in TASK_MODULES if m in sys.modules]\n"
        "workers = len(ex.workers)\n"
        "ex.end()\n"
        "print(json.dumps({'before': before, 'after': after, 'workers': workers}))\n"
    )
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "include.calendar_sync.executor" not in result["before"]  # importing the executor class is light
    assert result["after"] == list(TASK_MODULES) and result["workers"] == 1
