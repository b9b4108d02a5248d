"""The Parquet result store: atomic parts, heterogeneous columns, DuckDB queries, dropping failures."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.plan.store import ResultStore, flatten, query


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
