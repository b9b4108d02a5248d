"""The Parquet result store: atomic parts, heterogeneous columns, DuckDB queries, dropping failures."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError, DataError
from twinfer.plan.store import ResultStore, dedupe_rows, flatten, query


def _row(sid: str, status: str = "ok", **metrics) -> dict:
    return {"scenario_id": sid, "sweep_index": 0, "seed": 0, "status": status,
            "error": None if status == "ok" else "ValueError: boom", "wall_s": 0.1,
            "params_json": "{}", "scenario_json": "{}", **metrics}


def test_parts_with_different_columns_query_as_one_view(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([_row("a", goodput=2, ttft_p99_s=0.5), _row("b", goodput=4.5)])
    store.write_part([_row("c", "error"), _row("d", goodput=6, energy_j=10.0)])
    assert [p.name for p in store.parts()] == ["part-000000.parquet", "part-000001.parquet"]
    assert store.done() == {"a": "ok", "b": "ok", "c": "error", "d": "ok"}
    names, rows = query(tmp_path, "SELECT count(*), sum(goodput), count(energy_j), count(ttft_p99_s) FROM results")
    assert rows == [(4, 2 + 4.5 + 6, 1, 1)]
    _, rows = query(tmp_path, "SELECT scenario_id, error FROM results WHERE status = 'error'")
    assert rows == [("c", "ValueError: boom")]


def test_leftover_temp_files_are_ignored_and_removed(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([_row("a", x=1)])
    (tmp_path / ".part-000001.parquet.tmp").write_bytes(b"half a file")
    assert store.done() == {"a": "ok"}
    store.prepare()
    assert not list(tmp_path.glob("*.tmp"))
    assert store.write_part([_row("b", x=2)]).name == "part-000001.parquet"


def test_drop_failed_rewrites_parts_without_error_rows(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([_row("a", x=1), _row("b", "error")])
    store.write_part([_row("c", "error")])
    assert store.drop_failed() == 2
    assert store.done() == {"a": "ok"}
    assert len(store.parts()) == 1


def test_mixed_type_values_fall_back_to_text(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([_row("a", v=1, w=[1, 2]), _row("b", v="many", w=None)])
    _, rows = query(tmp_path, "SELECT v, w FROM results ORDER BY scenario_id")
    assert rows == [("1", "[1, 2]"), ("many", None)]


def test_flatten_dots_nested_keys() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": [1], "f": 3.5}) == {"a.b": 1, "a.c.d": 2, "e": "[1]", "f": 3.5}


def test_query_errors_are_user_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no result files"):
        query(tmp_path, "SELECT 1")
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([_row("a")])
    with pytest.raises(ConfigError, match="query failed"):
        query(tmp_path, "SELECT no_such_column FROM results")


def test_bookkeeping_columns_keep_their_types_when_all_null(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([_row("a", x=1)])  # error is None in every row of this part
    _, rows = query(tmp_path, "SELECT column_name, column_type FROM (DESCRIBE results) WHERE column_name = 'error'")
    assert rows == [("error", "VARCHAR")]


# ---- the query sandbox: read-only, nothing outside the results ---------------------------------------


@pytest.fixture
def results_folder(tmp_path):
    folder = tmp_path / "out"
    store = ResultStore(folder)
    store.prepare()
    store.write_part([_row("a", goodput=1.0), _row("b", goodput=2.0)])
    return folder


@pytest.mark.parametrize("sql", [
    "COPY (SELECT * FROM results) TO '{tmp}/stolen.csv'",
    "COPY results TO '{tmp}/stolen.parquet' (FORMAT parquet)",
    "ATTACH '{tmp}/new.duckdb' AS extra",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CREATE TABLE {name} AS SELECT 1",
    "CREATE VIEW leak AS SELECT 1",
    "INSERT INTO results (scenario_id) VALUES ('x')",
    "DELETE FROM results",
    "DROP TABLE results",
    "SET enable_external_access = true",
    "PRAGMA enable_profiling",
    "SELECT 1; COPY results TO '{tmp}/x.csv'",
], ids=["copy-csv", "copy-parquet", "attach", "install", "load", "create-table", "create-view", "insert",
        "delete", "drop", "set", "pragma", "two-statements"])
def test_writes_and_settings_are_refused(results_folder, tmp_path, sql) -> None:
    with pytest.raises(ConfigError) as info:
        query(results_folder, sql.format(tmp=tmp_path, name="t"))
    assert "read-only" in str(info.value) or "one SQL statement" in str(info.value)
    assert not [p for p in tmp_path.iterdir() if p.name != "out"]  # nothing was written beside the results
    assert query(results_folder, "SELECT count(*) FROM results")[1] == [(2,)]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('{outside}')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_json_auto('/etc/os-release')",
], ids=["read_csv", "read_text", "glob", "read_parquet-elsewhere", "replacement-scan", "read_json"])
def test_files_outside_the_results_cannot_be_read(results_folder, tmp_path, sql) -> None:
    other = ResultStore(tmp_path / "other")
    other.prepare()
    outside = other.write_part([_row("secret", goodput=9.0)])
    with pytest.raises(ConfigError) as info:
        query(results_folder, sql.format(outside=outside))
    assert "secret" not in str(info.value)
    assert "root:" not in str(info.value)


def test_reading_the_results_still_works(results_folder) -> None:
    names, rows = query(results_folder, "WITH r AS (SELECT * FROM results) SELECT scenario_id, goodput FROM r "
                                        "ORDER BY goodput")
    assert (names, rows) == (["scenario_id", "goodput"], [("a", 1.0), ("b", 2.0)])
    assert ("goodput", "DOUBLE") in [(r[0], r[1]) for r in query(results_folder, "DESCRIBE results")[1]]


def test_empty_sql_says_what_to_write(results_folder) -> None:
    with pytest.raises(ConfigError, match="SELECT \\* FROM results"):
        query(results_folder, "  ")


def test_duplicate_scenario_ids_read_as_one_row_preferring_ok(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([_row("a", goodput=1.0), _row("b", "error")])
    store.write_part([_row("a", goodput=1.0), _row("b", goodput=3.0), _row("c", "error")])
    store.write_part([_row("b", "error")])
    assert store.done() == {"a": "ok", "b": "ok", "c": "error"}
    _, rows = query(tmp_path, "SELECT scenario_id, status, goodput FROM results ORDER BY scenario_id")
    assert rows == [("a", "ok", 1.0), ("b", "ok", 3.0), ("c", "error", None)]
    kept, dropped = dedupe_rows([_row("a"), _row("b", "error"), _row("a"), _row("b")])
    assert dropped == 2 and [(r["scenario_id"], r["status"]) for r in kept] == [("a", "ok"), ("b", "ok")]


def test_a_corrupt_part_is_named(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([_row("a", goodput=1.0)])
    bad = tmp_path / "part-000001.parquet"
    bad.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(DataError, match="part-000001.parquet"):
        query(tmp_path, "SELECT * FROM results")
    with pytest.raises(DataError, match="part-000001.parquet"):
        store.done()
