"""``twinfer hardware`` through twinfer.cli.main."""

from __future__ import annotations

import json

from twinfer.cli import main


def test_hardware_lists_presets(capsys):
    """The table names every preset and marks guesses."""
    assert main(["hardware"]) == 0
    out = capsys.readouterr().out
    for name in ("a100-80g", "h100-sxm", "h200", "b200", "gb200", "groq-tsp-v1", "nvlink4", "ib-ndr"):
        assert name in out
    assert "[U]" in out


def test_hardware_json_and_sources(capsys):
    """--json carries values, sources and uncertain flags; --sources prints datasheet citations."""
    assert main(["hardware", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    h100 = next(c for c in data["chips"] if c["name"] == "h100-sxm")
    assert h100["mem_bw_bytes_per_s"] == 3.35e12
    assert "datasheet" in h100["sources"]["mem_bw_bytes_per_s"]
    assert "price_per_hour_usd" in h100["uncertain"]
    assert main(["hardware", "--sources"]) == 0
    assert "ISCA 2020" in capsys.readouterr().out


def test_hardware_file_adds_entries_and_bad_file_exits_2(capsys, write_file):
    """A user file adds its chip; a bad one exits 2 with a message, no traceback."""
    good = write_file("hw.toml", "[link.slow]\nbw_bytes_per_s = 1e9\nlatency_s = 1e-5\n")
    assert main(["hardware", "--json", "--hardware-file", str(good)]) == 0
    assert any(link["name"] == "slow" for link in json.loads(capsys.readouterr().out)["links"])
    bad = write_file("bad.toml", "[link.slow]\nbw_bytes_per_s = 1e9\n")
    assert main(["hardware", "--hardware-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "latency_s" in err and "Traceback" not in err


def test_piped_output_keeps_every_number_whole(capsys) -> None:
    from twinfer.cli import main

    assert main(["hardware", "--sources"]) == 0  # stdout is captured: not a terminal
    out = capsys.readouterr().out
    assert "…" not in out and "..." not in out
    assert "2,250T" in out  # B200 dense bf16 (presets.toml), cut to "2,250…" at 80 columns before
