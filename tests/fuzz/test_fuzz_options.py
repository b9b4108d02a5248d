"""Bad command-line options of every command: one clean error line naming the option, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_harness import assert_clean_error, invoke

SCENARIO = str(Path(__file__).resolve().parents[2] / "examples" / "synthetic_poisson.yaml")
SWEEP = str(Path(__file__).resolve().parents[2] / "examples" / "sweeps" / "rate_by_fleet.yaml")
PLAN = str(Path(__file__).resolve().parents[2] / "examples" / "plans" / "llama3-70b-conv.yaml")

#: Bad values of numeric options, by command. Each entry: (command prefix, option, values, mention).
NUMERIC_OPTIONS = [
    (["simulate"], "--seed", ["-1", "x", "1.5"], "--seed"),
    (["workload"], "--seed", ["-1", "x"], "--seed"),
    (["workload"], "--rate", ["-1", "0", "nan", "inf", "1e300", "x"], "rate"),
    (["estimate"], "--tp", ["0", "-1", "x"], "tp"),
    (["estimate"], "--pp", ["0", "-2"], "pp"),
    (["estimate"], "--batch", ["0", "-1", "1000000000000"], "batch"),
    (["estimate"], "--input-len", ["0", "-5", "x"], "input-len"),
    (["estimate"], "--output-len", ["0", "-5"], "output-len"),
    (["compile", "--model", "llama-3-8b"], "--chips", ["0", "-1", "x"], "chips"),
    (["compile", "--model", "llama-3-8b"], "--trace-chips", ["0", "-4"], "trace-chips"),
    (["compile", "--model", "llama-3-8b"], "--speculative-k", ["0", "-1", "x", "1000000000"], "speculative"),
    (["compile", "--model", "llama-3-8b", "--speculative-k", "2"], "--acceptance", ["-0.1", "nan", "2", "x,y"],
     "acceptance"),
    (["estimate"], "--speculative-k", ["0", "-1", "1000000000"], "speculative"),
    (["compile", "--model", "llama-3-8b"], "--prompt", ["0", "-4"], "prompt"),
    (["compile", "--model", "llama-3-8b"], "--param",
     ["d_mxm_cycles=-1", "d_mxm_cycles=nan", "d_mxm_cycles=inf", "d_mxm_cycles=1e300", "d_mxm_cycles=2.5",
      "host_bw_bytes_per_s=0", "d_mxm_cycles", "nope=3"], "param"),
    (["plan", PLAN, "--dry-run", "--out", "{tmp}/p"], "--top", ["-1", "0"], "--top"),
    (["plan", PLAN, "--dry-run", "--out", "{tmp}/p"], "--workers", ["0", "-3"], "--workers"),
    (["sweep", SWEEP, "--dry-run", "--out", "{tmp}/s"], "--workers", ["0", "-1"], "--workers"),
    (["sweep", SWEEP, "--dry-run", "--out", "{tmp}/s"], "--batch-size", ["0", "-1"], "--batch-size"),
    (["sweep", SWEEP, "--dry-run", "--out", "{tmp}/s"], "--flush-s", ["0", "-1", "nan", "inf"], "--flush-s"),
    (["serve"], "--fixed-ttft-ms", ["-5", "nan", "inf"], "--fixed-ttft-ms"),
    (["serve", "--fixed-ttft-ms", "10"], "--fixed-itl-ms", ["-1", "nan"], "--fixed-itl-ms"),
    (["serve"], "--speed", ["0", "-1", "nan", "inf"], "--speed"),
    (["serve", "--model", "llama-3-8b"], "--tp", ["0", "-1"], "--tp"),
    (["serve", "--model", "llama-3-8b"], "--instances", ["0", "-1", "1000000000"], "--instances"),
    (["serve"], "--max-queue", ["-1"], "--max-queue"),
    (["serve"], "--max-body-bytes", ["0", "-1"], "--max-body-bytes"),
    (["serve"], "--chat-default-max-tokens", ["0"], "--chat-default-max-tokens"),
    (["serve"], "--port", ["0", "70000"], "--port"),
    (["serve"], "--log-level", ["loud"], "--log-level"),
    (["run", "--model-dir", "{tmp}", "--token-ids", "1,2"], "--max-new-tokens", ["0", "-1"], "max-new-tokens"),
    (["calibrate", "--out", "{tmp}/c.json"], "--size", ["huge"], "--size"),
]


def _option_cases():
    return [(cmd, opt, v, mention) for cmd, opt, values, mention in NUMERIC_OPTIONS for v in values]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cmd,option,value,mention", _option_cases(),
                         ids=[f"{c[0]}{o}={v}" for c, o, v, _ in _option_cases()])
def test_bad_option_value(cmd, option, value, mention, tmp_path) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in cmd] + [option, value]
    assert_clean_error(invoke(argv), mention)


#: Paths that exist but are the wrong kind, or do not exist.
PATH_CASES = [
    (["simulate", SCENARIO, "--out", "{file}"], "--out"),
    (["simulate", SCENARIO, "--trace", "{dir}"], "--trace"),
    (["simulate", "{dir}"], "{dir}"),
    (["simulate", "{tmp}/missing.yaml"], "missing.yaml"),
    (["compile", "--model", "llama-3-8b", "--trace", "{dir}"], "--trace"),
    (["sweep", SWEEP, "--out", "{file}", "--dry-run"], "--out"),
    (["plan", PLAN, "--out", "{file}", "--dry-run"], "--out"),
    (["plan", "{tmp}/missing.yaml", "--out", "{tmp}/p"], "missing.yaml"),
    (["sweep", "{tmp}/missing.yaml", "--out", "{tmp}/s"], "missing.yaml"),
    (["report", "{tmp}/missing"], "missing"),
    (["report", "{dir}"], "{dir}"),
    (["report", "{file}"], "{file}"),
    (["results", "query", "SELECT 1", "--dir", "{tmp}/missing"], "missing"),
    (["results", "query", "SELECT 1", "--dir", "{dir}"], "{dir}"),
    (["results", "columns", "--dir", "{dir}"], "{dir}"),
    (["estimate", "--calibration", "{dir}"], "{dir}"),
    (["estimate", "--calibration", "{file}"], "{file}"),
    (["estimate", "--hardware-file", "{file}"], "{file}"),
    (["hardware", "--hardware-file", "{dir}"], "{dir}"),
    (["hardware", "--hardware-file", "{tmp}/missing.toml"], "missing.toml"),
    (["workload", "{tmp}/missing.csv"], "missing.csv"),
    (["workload", "{file}", "--format", "nope"], "nope"),
    (["run", "--model-dir", "{tmp}/missing", "--token-ids", "1,2"], "missing"),
    (["run", "--model-dir", "{dir}", "--token-ids", "1,2"], "config.json"),
    (["serve", "{tmp}/missing.yaml"], "missing.yaml"),
    (["serve", "--tokenizer", "{dir}"], "--tokenizer"),
    (["estimate", "--model", "no-such-model"], "no-such-model"),
    (["report", PLAN, "--out", "{dir}"], "--out"),
    (["report", PLAN, "--out", "{file}/r.html"], "--out"),
    (["calibrate", "--out", "{dir}", "--size", "tiny"], "--out"),
    (["calibrate", "--out", "{file}/c.json", "--size", "tiny"], "--out"),
    (["results", "query", "SELECT 1", "--dir", "{dir}", "--format", "xml"], "--format"),
    (["estimate", "--model", "{file}"], "{file}"),
    (["simulate", SCENARIO, "--out", "{file}/sub"], "--out"),
    (["serve", SCENARIO, "--fleet", "nope"], "nope"),
    (["estimate", "--hardware", "no-such-chip"], "no-such-chip"),
    (["estimate", "--dtype", "fp3"], "fp3"),
    (["compile", "--model", "llama-3-8b", "--dtype", "fp3"], "fp3"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("argv,mention", PATH_CASES, ids=[" ".join(a[:2]) + f" {m}" for a, m in PATH_CASES])
def test_bad_path_or_name(argv, mention, tmp_path) -> None:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file.txt").write_text("not what was expected\n")
    subs = {"{tmp}": str(tmp_path), "{dir}": str(tmp_path / "a-folder"), "{file}": str(tmp_path / "a-file.txt")}

    def sub(text: str) -> str:
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    assert_clean_error(invoke([sub(a) for a in argv]), sub(mention))

