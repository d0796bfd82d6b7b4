"""The quick command-line parser against argparse.

parse_common reads ordinary command lines without argparse (start-up); wherever
it answers, argparse (parse_intermixed_args, the fallback) must give the very
same options, and wherever argparse rejects a line, parse_common must leave it
to argparse.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyuring.copy.args import OPTIONS, parse_common
from pyuring.copy.cli import options_from
from pyuring.copy.helpparser import parse

from .test_copy_support import cli_env

SHORT = [f for o in OPTIONS for f in o.flags if len(f) == 2 and o.kind in ("flag", "count")]
LONG_SWITCHES = [f for o in OPTIONS for f in o.flags if f[:2] == "--"
                 and o.kind in ("flag", "count")]
ALL_SHORT = [f for o in OPTIONS for f in o.flags if len(f) == 2]
VALUED = [o for o in OPTIONS if o.kind in ("choice", "value")]
ODD = ["--", "-", "", "-h", "--help", "--version", "--arch", "--no-x", "--bogus", "-Z",
       "-5", "--queue", "--backend", "-a b", "--archive=1", "-a=", "---", "--=x"]
VALUES = ["auto", "uring", "sync", "ring", "copy_file_range", "0", "7", "-3", " 12 ", "+4",
          "1_000", "x", "", "-", "auto ", "--archive", "-a", "0x10", "٣"]


def _argparse(argv: List[str]) -> Optional[Dict[str, Any]]:
    """argparse's options, or None where it exits (an error, --help, --version)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return vars(parse(argv))
        except SystemExit:
            return None


def _quick(argv: List[str]) -> Optional[Dict[str, Any]]:
    ns = parse_common(argv)
    return None if ns is None else vars(ns)


path_names = st.text(st.sampled_from("ab/.-_ =é"), min_size=0, max_size=6)
ordinary_word = st.one_of(
    st.sampled_from(LONG_SWITCHES),
    st.lists(st.sampled_from(SHORT), min_size=1, max_size=4).map(
        lambda fs: "-" + "".join(f[1] for f in fs)),
    st.sampled_from(VALUED).flatmap(lambda o: st.sampled_from(
        [f"{o.flags[-1]}={c}" for c in o.choices] if o.kind == "choice"
        else [f"{o.flags[-1]}={n}" for n in ("0", "1", "64", "4096")])),
    path_names.filter(lambda p: not p.startswith("-")),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ordinary_word, max_size=8))
def test_ordinary_lines_are_read_quickly_and_as_argparse_reads_them(words: List[str]) -> None:
    quick = _quick(words)
    assert quick is not None, words
    assert quick == _argparse(words)


any_word = st.one_of(
    ordinary_word,
    st.sampled_from(ODD),
    st.sampled_from(VALUES),
    st.sampled_from(VALUED).map(lambda o: o.flags[0]),
    st.tuples(st.sampled_from(VALUED), st.sampled_from(VALUES)).map(
        lambda t: f"{t[0].flags[0]}={t[1]}"),
    st.lists(st.sampled_from([*ALL_SHORT, "-h", "-x", "-="]), min_size=1, max_size=4).map(
        lambda fs: "-" + "".join(f[1] for f in fs)),
    st.text(max_size=5),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(any_word, max_size=8))
def test_any_line_the_quick_parser_reads_argparse_reads_alike(words: List[str]) -> None:
    quick = _quick(words)
    if quick is not None:
        assert quick == _argparse(words), words


@pytest.mark.parametrize("argv", [
    ["src", "-a", "dst"],
    ["-aHAX", "--stats", "s/", "d"],
    ["s", "d", "-vv", "--backend", "sync", "--queue-depth=8"],
    ["--io-workers", "auto", "s", "d"],
    ["--io-workers=3", "--no-perms", "-n", "s", "d"],
])
def test_examples_read_by_both(argv: List[str]) -> None:
    quick = _quick(argv)
    assert quick is not None and quick == _argparse(argv)


def test_the_quick_parser_feeds_the_same_options() -> None:
    """-a, negations, -D and the engine knobs end up in Options as before."""
    ns = parse_common(["-avvD", "--no-times", "--copy-threads", "2", "--io-workers=auto",
                       "--data-path=ring", "a", "b"])
    assert ns is not None
    opts = options_from(ns)
    assert (opts.recursive, opts.links, opts.perms, opts.times) == (True, True, True, False)
    assert (opts.devices, opts.specials, opts.verbose) == (True, True, 2)
    assert (opts.copy_threads, opts.io_workers, opts.data_path) == (2, -1, "ring")
    assert ns.paths == ["a", "b"]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["--arch", "a", "b"],
                                  ["--queue-depth", "-3", "a", "b"],
                                  ["--backend=fast", "a", "b"], ["-ax", "a", "b"],
                                  ["--io-workers=-1", "a", "b"]])
def test_what_the_quick_parser_leaves_to_argparse(argv: List[str]) -> None:
    assert parse_common(argv) is None


@pytest.mark.parametrize("argv, before, paths", [
    (["-a", "--", "-n", "src", "dst"], ["-a"], ["-n", "src", "dst"]),
    (["--", "-v", "s", "d"], [], ["-v", "s", "d"]),
    (["--", "a", "--queue-depth", "5", "b"], [], ["a", "--queue-depth", "5", "b"]),
    (["s", "--", "--", "d"], ["s"], ["s", "--", "d"]),
    (["-a", "s", "--", "-d"], ["-a", "s"], ["s", "-d"]),
    (["--arch", "--", "--arch"], ["--arch"], ["--arch"]),
])
def test_every_argument_after_double_dash_is_a_path(argv: List[str], before: List[str],
                                                    paths: List[str]) -> None:
    """As argparse's parse_args (and rsync) read ``--``; parse_intermixed_args
    alone would drop it and take what follows for options again."""
    expected = _argparse(before)
    assert expected is not None
    expected["paths"] = paths
    assert _argparse(argv) == expected
    quick = _quick(argv)
    assert quick is None or quick == expected
    if "--arch" not in argv:
        assert quick is not None


@pytest.mark.parametrize("argv", [["-a b", "s", "d"], ["-v b", "s", "d"], ["--bogus", "s", "d"],
                                  ["--backend", "--", "s", "d"], ["-a b", "- b", "d"],
                                  ["-a5", "-5", "d"], ["--queue-depth", "-5 ", "-a5 ", "d"],
                                  ["-a=", "s", "d"], ["--queue-depth=--", "s", "d"],
                                  ["--backend=--", "s", "d"], ["-hx", "s", "d"]])
def test_argparse_refuses_what_is_not_an_option_or_a_path(argv: List[str]) -> None:
    """Every Python refuses these (exit 1): 3.13.0's argparse passed the unknown
    tail of "-a b" on as a path "- b" and showed help for "-hx", 3.9's raised
    IndexError on "-a=", 3.9-3.12 stored [] for "--queue-depth=--"."""
    assert _argparse(argv) is None
    assert _quick(argv) is None


def test_options_after_the_paths_on_the_command_line(tmp_path: Path) -> None:
    """rsync takes options anywhere; so does the CLI (argparse's parse_args did
    not: ``SRC -a DST`` was 'unrecognized arguments: DST', exit 1)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    for n, argv in enumerate(([f"{src}/", "-a", str(tmp_path / "d0")],
                              ["-r", "--", f"{src}/", str(tmp_path / "d1")],
                              [f"{src}/", "--arch", str(tmp_path / "d2"), "-v"])):
        p = subprocess.run([sys.executable, "-m", "pyuring.copy", *argv], env=cli_env(),
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / f"d{n}" / "f").read_bytes() == b"data"
    # a source named like an option, after --: copied, not taken for -n (dry run)
    (tmp_path / "-n").write_bytes(b"dash")
    for n, tail in enumerate((["-n", "src"], ["-n", "src", "--arch"])):
        p = subprocess.run([sys.executable, "-m", "pyuring.copy", "-a", "--", *tail,
                            f"dd{n}"], env=cli_env(), capture_output=True, text=True,
                           cwd=tmp_path)
        if "--arch" in tail:  # (a path too, after --: missing, exit 23)
            assert p.returncode == 23 and "--arch" in p.stderr, p.stderr
        else:
            assert p.returncode == 0, p.stderr
        assert (tmp_path / f"dd{n}" / "-n").read_bytes() == b"dash"
        assert (tmp_path / f"dd{n}" / "src" / "f").read_bytes() == b"data"
