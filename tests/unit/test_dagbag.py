"""Every DAG file in dags/ imports cleanly and defines at least one DAG (Airflow's own parser)."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():  # -> airflow.dag_processing.dagbag.DagBag (Airflow is imported only inside the test)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), safe_mode=False)


def dag_files() -> list[Path]:
    # Files starting with "_" are helpers by convention (no DAG expected).
    return sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.name)
def test_every_dag_file_defines_a_dag(dagbag, path: Path) -> None:
    defined_here = [dag_id for dag_id, dag in dagbag.dags.items() if Path(dag.fileloc).resolve() == path.resolve()]
    assert defined_here, f"{path.name} defines no DAG"


def test_the_check_catches_a_broken_dag_file(tmp_path: Path) -> None:
    """The same parser on a folder with one good and one broken file: the checks above can fail."""
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "good.py").write_text(
        "from airflow.sdk import DAG\nfrom airflow.providers.standard.operators.empty import EmptyOperator\n"
        "with DAG('good_dag', schedule=None):\n    EmptyOperator(task_id='t')\n"
    )
    (tmp_path / "broken.py").write_text("from airflow.sdk import DAG\nimport no_such_module_anywhere\n")
    bag = DagBag(dag_folder=str(tmp_path), safe_mode=False)
    assert list(bag.dags) == ["good_dag"]
    assert [Path(p).name for p in bag.import_errors] == ["broken.py"]


def ui_required(schema: dict) -> bool:
    """Airflow 3.3's trigger form (airflow/ui, the flexible form): a param is "required" when its schema
    has a type and that type does not include "null"."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


def test_the_trigger_form_shows_every_param_as_optional_with_its_default(dagbag) -> None:
    from include.calendar_sync.prepare import RunParams

    params = {(dag_id, name): param for dag_id, dag in dagbag.dags.items() for name, param in dag.params.items()}
    assert ("advoware_calendar_sync", "dry_run") in params
    for (dag_id, name), param in params.items():
        assert not ui_required(param.schema), f"{dag_id}.{name} would show as required"
        assert param.value is not None, f"{dag_id}.{name} has no default"
    # an emptied field arrives as null: valid, and the run takes the default
    import copy

    calendar = copy.deepcopy(dagbag.dags["advoware_calendar_sync"].params)
    for name in list(calendar):
        calendar[name] = None
    calendar.validate()
    assert RunParams.from_mapping(dict(calendar)) == RunParams()
