"""``twinfer workload``: the inspector prints what build_workload makes of a trace or scenario."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from twinfer.cli import workload as workload_cli


def _app() -> typer.Typer:
    app = typer.Typer()
    workload_cli.register(app)

    @app.callback()
    def _root() -> None:
        """test app"""

    return app


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["workload", *args])
    return result.exit_code, result.output


def test_default_is_the_builtin_sample() -> None:
    code, out = _run("--json")
    info = json.loads(out)
    assert code == 0 and info["requests"] == 2000 and info["source"] == "builtin:azure-conv-sample"


def test_trace_summary_matches_a_csv_module_count(traces_dir: Path) -> None:
    path = traces_dir / "azure2023_code_head.csv"
    with path.open(newline="") as fh:
        outputs = [int(r[2]) for r in list(csv.reader(fh))[1:]]
    code, out = _run(str(path), "--json")
    info = json.loads(out)
    assert code == 0 and info["requests"] == len(outputs)
    assert info["output_tokens"]["max"] == max(outputs)
    assert abs(info["output_tokens"]["mean"] - sum(outputs) / len(outputs)) < 1e-9


def test_sharegpt_needs_a_rate_and_gets_poisson_arrivals(traces_dir: Path) -> None:
    path = str(traces_dir / "sharegpt8k_head.csv")
    code, _ = _run(path)
    assert code != 0
    code, out = _run(path, "--rate", "2", "--json")
    assert code == 0 and json.loads(out)["requests"] == 30


def test_scenario_yaml_with_skip_bad_rows(traces_dir: Path, tmp_path: Path) -> None:
    lines = (traces_dir / "twinfer_sample.csv").read_text().splitlines()
    lines[2] = "0.25,many,64,second"
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "s.yaml").write_text("workload:\n  trace: t.csv\n")
    code, _ = _run(str(tmp_path / "s.yaml"))
    assert code != 0
    code, out = _run(str(tmp_path / "s.yaml"), "--skip-bad-rows", "--json")
    info = json.loads(out)
    assert code == 0 and info["requests"] == 4 and info["skipped_rows"] == 1
    assert "line 3: prompt_tokens 'many' is not an integer" in info["notes"][0]


def test_mooncake_prefix_reuse_counts(traces_dir: Path) -> None:
    path = traces_dir / "mooncake_conversation_head.jsonl"
    ids = [i for line in path.read_text().splitlines() for i in json.loads(line)["hash_ids"]]
    code, out = _run(str(path), "--json")
    blocks = json.loads(out)["prefix_blocks"]
    assert code == 0 and blocks["total"] == len(ids) and blocks["unique"] == len(set(ids))
