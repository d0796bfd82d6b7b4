"""The benchmark scripts' own logic (no measuring here: that needs root and minutes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from scripts import ab_copy
from scripts.bench_copy import main as bench_main
from scripts.bench_copy import results_from_json


def _saved(path: Path, shapes: Dict[str, Dict[str, List[float]]], commit: str) -> str:
    data: Dict[str, Any] = {"machine": {"kernel": "k", "cpu": "c", "python": "CPython 3",
                                        "pyuring": commit, "date": "2026-11-25T00:00"},
                            "shapes": {}}
    for key, tools in shapes.items():
        data["shapes"][key] = {"title": f"shape {key}", "repeats": 3, "tools": {
            name: {"label": name, "runs": [{"wall": w, "user": 0.0, "sys": 0.0, "rc": 0}
                                           for w in walls]}
            for name, walls in tools.items()}}
    path.write_text(json.dumps(data))
    return str(path)


def test_replot_merges_runs_the_later_file_wins(tmp_path: Path) -> None:
    first = _saved(tmp_path / "all.json", {
        "a": {"cp": [1.0, 1.0, 1.0], "pyuring": [3.0, 3.0, 3.0]},
        "b": {"cp": [2.0, 2.0, 2.0], "pyuring": [3.0, 3.0, 3.0]},
    }, "old")
    again = _saved(tmp_path / "a.json", {"a": {"cp": [1.0, 2.0, 9.0], "pyuring": [4.0, 4.0, 5.0]}},
                   "new")
    results, info = results_from_json([first, again])
    assert [r.key for r in results] == ["a", "b"]
    a, b = results
    assert a.median("pyuring") == 4.0 and a.reference() == ("cp", 2.0)  # from the rerun
    assert b.median("pyuring") == 3.0 and b.reference() == ("cp", 2.0)  # from the full run
    assert info["pyuring"] == "old + new"  # the subtitle names both runs
    svg = tmp_path / "p.svg"
    assert bench_main(["--replot", first, again, "--plot", str(svg)]) == 0
    text = svg.read_text()
    assert ">2.00<" in text and ">1.50<" in text and "pyuring old + new" in text


def test_replot_needs_a_plot_file(tmp_path: Path) -> None:
    saved = _saved(tmp_path / "x.json", {"a": {"cp": [1.0], "pyuring": [2.0]}}, "c")
    with pytest.raises(SystemExit, match="--plot"):
        bench_main(["--replot", saved])


def test_ab_variants_are_checkouts_with_optional_arguments(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    v = ab_copy.Variant(f"t0={repo}::--copy-threads 0 --queue-depth 64")
    assert v.name == "t0" and v.root == str(repo)
    assert v.args == ["--copy-threads", "0", "--queue-depth", "64"]
    with pytest.raises(SystemExit, match="no pyuring package"):
        ab_copy.Variant(f"x={tmp_path}")
    with pytest.raises(SystemExit, match="NAME=DIR"):
        ab_copy.Variant(str(repo))
