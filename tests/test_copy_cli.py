"""The command line as users run it: ``python -m pyuring.copy ...`` in a child process.

Help text, --json / --stats figures, -v itemized lines, -n changing nothing,
-q printing nothing, the backend choice, engine knobs, exit codes and
argument errors without tracebacks.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

from .conftest import IS_ROOT, URING
from .test_copy_support import (
    acl_blob,
    build_mixed_tree,
    check_backend,
    cli_env,
    fix_times,
    run_cli,
    set_times,
    write,
)
from .treecompare import assert_same_tree, changes_between, snapshot


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_mixed_tree(tmp_path / "src", big=1 << 20)


def _entries(root: Path) -> Set[str]:
    """Every path below root, relative, as -v shows them (directories with a '/')."""
    out: Set[str] = set()
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirs:
            p = os.path.normpath(os.path.join(rel, n))
            out.add(p if os.path.islink(os.path.join(dirpath, n)) else p + "/")
        for n in files:
            out.add(os.path.normpath(os.path.join(rel, n)))
    return out


_ITEM = re.compile(r"^([>ch.][fdLDS][.+a-zT ]{9}) (.*)$")


def _item_path(code: str, rest: str) -> str:
    """An itemized line's path: a hard link's ' => first' and a new symlink's
    ' -> target' cut off."""
    if code[0] == "h":
        return rest.split(" => ", 1)[0]
    if code[1] == "L":
        return rest.split(" -> ", 1)[0]
    return rest


def _itemized(stdout: str) -> List[str]:
    """The paths of the -v itemized lines, but for the root's own (``./``)."""
    paths = []
    for line in stdout.splitlines():
        m = _ITEM.match(line)
        if m and m.group(2) != "./":
            paths.append(_item_path(m.group(1), m.group(2)))
    return paths


# --------------------------------------------------------------------------------------
# help and entry points
# --------------------------------------------------------------------------------------
FLAGS = ["-a", "--archive", "-r", "--recursive", "-l", "--links", "-p", "--perms",
         "-t", "--times", "-g", "--group", "-o", "--owner", "-D", "--devices",
         "--specials", "-H", "--hard-links", "-X", "--xattrs", "-A", "--acls",
         "-n", "--dry-run", "-v", "--verbose", "-q", "--quiet", "--progress", "--stats",
         "--json", "--fsync", "--numeric-ids", "-I", "--ignore-times", "--backend",
         "--queue-depth", "--max-files-in-flight"]


def test_help_lists_every_flag_and_exit_code() -> None:
    r = run_cli(["--help"])
    assert r.returncode == 0, r
    assert r.stderr == ""
    text = r.stdout
    for flag in FLAGS:
        assert re.search(rf"(^|[\s,\[]){re.escape(flag)}([\s,=\]]|$)", text, re.M), flag
    for choice in ("auto", "uring", "sync"):
        assert choice in text
    for code in ("0", "1", "11", "20", "23", "24"):
        assert re.search(rf"^\s+{code}\s+\S", text, re.M), f"exit code {code} not explained"
    assert "SRC" in text and "DST" in text
    assert "trailing slash" in text.lower()


def test_version() -> None:
    r = run_cli(["--version"])
    assert r.returncode == 0, r
    assert re.search(r"\d+\.\d+", r.stdout)


def test_version_alone_is_what_argparse_prints_without_argparse(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A lone --version is answered before argparse is imported (~10 ms); with
    anything else on the line argparse decides, as before."""
    import subprocess

    from pyuring.copy.cli import build_parser, parse_args

    with pytest.raises(SystemExit) as ours:
        parse_args(["--version"])
    mine = capsys.readouterr()
    with pytest.raises(SystemExit) as theirs:
        build_parser().parse_args(["--version"])
    want = capsys.readouterr()
    assert (ours.value.code, mine.out, mine.err) == (theirs.value.code or 0, want.out, want.err)
    code = ("import sys\n"
            "from pyuring.copy.cli import main\n"
            "try:\n    main(['--version'])\n"
            "except SystemExit as e:\n    print('EXIT', e.code, 'argparse' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-S", "-c", code], env=cli_env(), capture_output=True,
                       text=True)
    assert p.stdout.splitlines()[-1] == "EXIT 0 False", p.stdout + p.stderr


def test_console_script_entry_point(tmp_path: Path, tree: Path) -> None:
    """``pyuring-copy`` is ``pyuring.copy.__main__:run``; it exits with the status."""
    import subprocess

    code = "from pyuring.copy.__main__ import run; run()"
    p = subprocess.run([sys.executable, "-c", code, "-aHX", f"{tree}/", str(tmp_path / "dst")],
                       env=cli_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert_same_tree(tree, tmp_path / "dst")
    p = subprocess.run([sys.executable, "-c", code, "--bogus"], env=cli_env(),
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr


def test_help_reads_as_argparse_would_print_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser finds the terminal width once instead of per add_argument; the
    help must come out exactly as argparse's own formatter lays it out."""
    import argparse

    from pyuring.copy.cli import build_parser

    for columns in ("71", "123"):
        monkeypatch.setenv("COLUMNS", columns)
        p = build_parser()
        ours = p.format_help()
        usage = ours.split("\n\n")[0].splitlines()
        assert len(usage) > 1 and max(len(line) for line in usage) <= int(columns) - 2
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        monkeypatch.setattr(type(p), "_get_formatter", argparse.ArgumentParser._get_formatter)
        assert p.format_help() == ours
        monkeypatch.undo()


def test_a_copy_does_not_import_what_it_does_not_use(tmp_path: Path) -> None:
    """Start-up is paid by every copy: a copy of small files (no large file, so no
    worker threads) must not import shutil (argparse's default formatter does,
    with bz2 and lzma), threading or weakref, and an ordinary command line not
    argparse (with gettext and locale) or signal; the ring's prep_* methods
    (pyuring.ops) neither, nor typing, re and enum (~7 ms: the annotations are
    for the type checker only).  ``-S`` keeps site's own imports out of the
    picture."""
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(b"x" * i)
    code = ("import sys\n"
            "from pyuring.copy.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "print(rc, ' '.join(sorted(sys.modules)))\n")
    p = subprocess.run([sys.executable, "-S", "-c", code, "-a", f"{src}/", str(tmp_path / "d")],
                       env=cli_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rc, _, mods = p.stdout.strip().splitlines()[-1].partition(" ")
    assert rc == "0"
    loaded = set(mods.split())
    assert "pyuring.copy.engine" in loaded  # (it did copy)
    assert (tmp_path / "d" / "f7").read_bytes() == b"x" * 7
    assert not loaded & {"shutil", "bz2", "lzma", "threading", "weakref", "argparse",
                         "gettext", "locale", "signal", "pyuring.ops", "pyuring.ring",
                         "typing", "re", "enum"}


def test_console_script_flushes_everything_before_its_quick_exit(tmp_path: Path) -> None:
    """run() leaves with os._exit: buffered -v lines (far more than one buffer) and
    the exit status must still arrive, into a file and into a pipe."""
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3000):
        (src / f"file-with-a-longish-name-{i:05d}").write_bytes(b"x")
    code = "from pyuring.copy.__main__ import run; run()"
    out = tmp_path / "out.txt"
    with open(out, "wb") as fh:
        p = subprocess.run([sys.executable, "-c", code, "-av", f"{src}/", str(tmp_path / "d1")],
                           env=cli_env(), stdout=fh, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr
    lines = out.read_bytes().decode().splitlines()
    assert sum(1 for ln in lines if "file-with-a-longish-name-" in ln) == 3000
    assert lines[-1].startswith("sent "), lines[-3:]
    p = subprocess.run([sys.executable, "-c", code, "-av", f"{src}/", str(tmp_path / "d2")],
                       env=cli_env(), capture_output=True)
    assert p.returncode == 0
    assert p.stdout.count(b"file-with-a-longish-name-") == 3000
    p = subprocess.run([sys.executable, "-c", code, "-a", str(tmp_path / "missing"),
                        str(tmp_path / "d3")], env=cli_env(), capture_output=True)
    assert p.returncode == 23, p
    assert p.stderr.count(b"\n") == 1 and b"missing" in p.stderr


# --------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------
JSON_KEYS = {"files", "regular_files", "dirs", "symlinks", "specials", "hardlinks",
             "transferred", "unchanged", "bytes_total", "bytes_transferred", "errors",
             "vanished", "skipped", "changed_during_copy", "interrupted", "elapsed",
             "backend", "sqes", "enters", "completions", "sqes_by_op", "sqes_per_enter",
             "direct_syscalls", "exit_code"}


def test_json_statistics(tmp_path: Path, tree: Path, backend: str) -> None:
    r = run_cli(["-aHX", "--json", "--backend", backend, f"{tree}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    st = r.json()
    assert set(st) >= JSON_KEYS, JSON_KEYS - set(st)
    assert st["exit_code"] == 0
    assert st["backend"] == backend
    assert st["interrupted"] is False
    assert st["files"] == len(_entries(tree))
    assert st["regular_files"] == 12
    assert st["dirs"] == 4
    assert st["symlinks"] == 3
    assert st["specials"] == 2
    assert st["hardlinks"] == 1
    assert st["transferred"] == 11
    assert st["bytes_total"] == sum(os.lstat(os.path.join(d, f)).st_size
                                    for d, _, fs in os.walk(tree) for f in fs
                                    if os.path.isfile(os.path.join(d, f))
                                    and not os.path.islink(os.path.join(d, f)))
    assert isinstance(st["direct_syscalls"], dict)
    assert isinstance(st["sqes_by_op"], dict)
    assert isinstance(st["sqes_per_enter"], (int, float))
    if backend == "uring":
        assert st["sqes"] == sum(st["sqes_by_op"].values()) > 0
        assert st["enters"] > 0
        assert st["sqes_per_enter"] == pytest.approx(st["sqes"] / st["enters"], abs=0.01)
        assert st["sqes_by_op"].get("STATX", 0) >= st["files"]
    else:
        assert st["sqes"] == st["enters"] == 0
        assert st["sqes_by_op"] == {}
    assert_same_tree(tree, tmp_path / "dst")


def test_json_with_verbose_and_stats_keeps_stdout_for_the_json(tmp_path: Path,
                                                               tree: Path) -> None:
    """--json -v --stats: stdout is the JSON object alone, which a script
    parses; the itemized lines, the summary and "sent ..." go to stderr.
    (Before, they came first on stdout, and json.loads failed.)"""
    import json

    r = run_cli(["-av", "--json", "--stats", f"{tree}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    st = json.loads(r.stdout)
    assert st["files"] == len(_entries(tree)) and st["exit_code"] == 0
    assert "cd+++++++++ ./" in r.err_lines
    assert sum(line.startswith(">f+++++++++ ") for line in r.err_lines) == st["transferred"]
    assert any(line.startswith("Number of files:") for line in r.err_lines)
    assert any(line.startswith("sent ") for line in r.err_lines)


@pytest.mark.parametrize("case", ["dst-is-a-file", "inside-source", "only-missing"])
def test_json_when_the_copy_cannot_start(tmp_path: Path, tree: Path, case: str) -> None:
    """A script reading --json gets one object either way: the error and the
    exit status when the copy never started, the (empty) figures otherwise."""
    write(tmp_path / "file", b"keep")
    args = {"dst-is-a-file": [f"{tree}/", str(tmp_path / "file")],
            "inside-source": [f"{tree}/", str(tree / "d1" / "in")],
            "only-missing": [str(tmp_path / "nope"), str(tmp_path / "dst")]}[case]
    r = run_cli(["-a", "--json", *args])
    assert "Traceback" not in r.stderr and len(r.err_lines) == 1, r
    st = r.json()
    assert set(st) >= JSON_KEYS, JSON_KEYS - set(st)
    assert st["exit_code"] == r.returncode == {"dst-is-a-file": 3, "inside-source": 1,
                                               "only-missing": 23}[case], r
    assert st["transferred"] == 0
    if case == "only-missing":  # (it started: the usual figures, one error)
        assert "error" not in st and st["errors"] == 1
    else:
        assert st["error"] == r.err_lines[0].split(": ", 1)[1]
    assert (tmp_path / "file").read_bytes() == b"keep"


def test_verbose_says_no_backend_ran_when_nothing_was_copied(tmp_path: Path) -> None:
    r = run_cli(["-av", str(tmp_path / "nope"), str(tmp_path / "dst")])
    assert r.returncode == 23, r
    assert r.stdout == "sent 0 bytes in 0 files; backend none (nothing to copy)\n", r


def test_stats_summary(tmp_path: Path, tree: Path, backend: str) -> None:
    r = run_cli(["-a", "--stats", "--backend", backend, f"{tree}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    out = r.stdout
    for needle in ("Number of files:", "Number of regular files transferred:",
                   "Total file size:", "Direct syscalls:", f"Backend: {backend}"):
        assert needle in out, needle
    if backend == "uring":
        m = re.search(r"io_uring: ([\d,]+) SQEs in ([\d,]+) io_uring_enter calls \(([\d.]+) "
                      r"SQEs per enter\)", out)
        assert m, out
        assert int(m.group(1).replace(",", "")) > 0
        assert "SQEs by opcode:" in out and "STATX" in out
    else:
        assert "io_uring:" not in out
        assert "SQEs by opcode" not in out


# --------------------------------------------------------------------------------------
# -v, -q, -n
# --------------------------------------------------------------------------------------
def test_verbose_itemizes_each_created_entry(tmp_path: Path, tree: Path, backend: str) -> None:
    dst = tmp_path / "dst"
    r = run_cli(["-aH", "-v", "--backend", backend, f"{tree}/", str(dst)])
    assert r.returncode == 0, r
    items = _itemized(r.stdout)
    assert sorted(items) == sorted(_entries(tree)), r.stdout
    assert len(items) == len(set(items)), "an entry itemized twice"
    lines = {m.group(2): m.group(1) for m in map(_ITEM.match, r.stdout.splitlines()) if m}
    assert lines["./"] == "cd+++++++++"  # (as rsync -i: the new DST itself)
    assert lines["d1/"].startswith("cd")
    assert lines["one"].startswith(">f")
    assert lines["rel-link -> d1/f"].startswith("cL")
    assert lines["fifo"].startswith("cS")  # (rsync: S for FIFOs and sockets, D for devices)
    # (rsync -i: the later name of a hard-link group, and "=> the first")
    assert {"d1/d2/hl => d1/f", "d1/f => d1/d2/hl"} & set(lines)
    assert r.stderr == ""
    # nothing to do: nothing itemized
    r = run_cli(["-aH", "-v", "--backend", backend, f"{tree}/", str(dst)])
    assert r.returncode == 0, r
    assert _itemized(r.stdout) == []
    # one changed file: one line
    write(tree / "small", b"changed")
    set_times(tree / "small", 1_600_000_000_123_456_789)
    r = run_cli(["-aH", "-v", "--backend", backend, f"{tree}/", str(dst)])
    assert _itemized(r.stdout) == ["small"], r.stdout


def _items_dry_then_real(tree: Path, dst: Path, backend: str, flags: str,
                         want: Dict[str, str], real_rc: int = 0) -> None:
    """-n, then the real run (exit ``real_rc``), both with -v: the itemized
    lines are ``want``, each once."""
    for argv, rc in (([flags + "n", "-v"], 0), ([flags, "-v"], real_rc)):
        r = run_cli([*argv, "--backend", backend, f"{tree}/", str(dst)])
        assert r.returncode == rc, r
        lines = [(m.group(2), m.group(1)) for m in map(_ITEM.match, r.stdout.splitlines())
                 if m]
        assert sorted(lines) == sorted(want.items()), r.stdout


def test_verbose_itemizes_attribute_only_changes(tmp_path: Path, tree: Path,
                                                backend: str) -> None:
    """An unchanged file whose mode (and, as root, owner or group) is brought up
    to date: one line, as rsync -i writes it; -n lists it and changes nothing."""
    dst = tmp_path / "dst"
    assert run_cli(["-a", "--backend", backend, f"{tree}/", str(dst)]).returncode == 0
    os.chmod(tree / "small", 0o600)
    want = {"small": ".f...p....."}
    if IS_ROOT:
        os.chown(tree / "one", 4321, -1, follow_symlinks=False)
        os.chown(tree / "d1" / "d2" / "f", -1, 4321, follow_symlinks=False)
        want.update({"one": ".f....o....", "d1/d2/f": ".f.....g..."})
    _items_dry_then_real(tree, dst, backend, "-a", want)
    assert stat.S_IMODE(os.stat(dst / "small").st_mode) == 0o600
    r = run_cli(["-a", "-v", "--backend", backend, f"{tree}/", str(dst)])
    assert _itemized(r.stdout) == [], r.stdout


def test_verbose_itemizes_xattr_and_acl_only_changes(tmp_path: Path, tree: Path,
                                                     backend: str) -> None:
    """-X / -A: an unchanged file whose xattrs (x) or ACL (a) change, or lose one,
    gets one line, as with rsync -i; with -n too (and nothing changes)."""
    dst = tmp_path / "dst"
    os.setxattr(tree / "small", "user.gone", b"1")
    assert run_cli(["-aXA", "--backend", backend, f"{tree}/", str(dst)]).returncode == 0
    os.setxattr(tree / "one", "user.new", b"v")
    os.removexattr(tree / "small", "user.gone")
    want = {"one": ".f........x", "small": ".f........x"}
    f = tree / "d1" / "d2" / "f"
    mode = os.stat(f).st_mode
    try:
        os.setxattr(f, "system.posix_acl_access", acl_blob(0o644, users=[(4321, 4)]))
        # (an ACL's mask is the group bits: p when those changed with it)
        want["d1/d2/f"] = ".f...p...a." if os.stat(f).st_mode != mode else ".f.......a."
    except OSError:
        pass  # (no ACLs here: the xattr lines are still checked)
    _items_dry_then_real(tree, dst, backend, "-aXA", want)
    assert os.getxattr(dst / "one", "user.new") == b"v"
    assert "user.gone" not in os.listxattr(dst / "small")
    r = run_cli(["-aXA", "-v", "--backend", backend, f"{tree}/", str(dst)])
    assert _itemized(r.stdout) == [], r.stdout


def test_verbose_itemizes_directories_and_symlinks_attribute_changes(
        tmp_path: Path, tree: Path, backend: str) -> None:
    """An existing directory whose mode, times or xattrs change, a symlink whose
    times (and, as root, owner) change, a FIFO whose mode changes: one line
    each, as rsync -i writes them (``.d..tp....x``, ``.L..t.o....``,
    ``.S...p.....``); -n lists the same and changes nothing."""
    dst = tmp_path / "dst"
    assert run_cli(["-aX", "--backend", backend, f"{tree}/", str(dst)]).returncode == 0
    d1, d2 = tree / "d1", tree / "d1" / "d2"
    os.chmod(d1, 0o705)
    os.utime(d1, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    os.setxattr(d2, "user.dir", b"1")
    os.utime(tree / "rel-link", ns=(1, 1_400_000_000_000_000_000), follow_symlinks=False)
    os.chmod(tree / "fifo", 0o600)
    want = {"d1/": ".d..tp.....", "d1/d2/": ".d........x", "rel-link -> d1/f": ".L..t......",
            "fifo": ".S...p....."}
    if IS_ROOT:
        os.chown(tree / "rel-link", 4321, -1, follow_symlinks=False)
        want["rel-link -> d1/f"] = ".L..t.o...."
    _items_dry_then_real(tree, dst, backend, "-aX", want)
    assert stat.S_IMODE(os.stat(dst / "d1").st_mode) == 0o705
    assert os.getxattr(dst / "d1" / "d2", "user.dir") == b"1"
    assert os.lstat(dst / "rel-link").st_mtime_ns == 1_400_000_000_000_000_000
    r = run_cli(["-aX", "-v", "--backend", backend, f"{tree}/", str(dst)])
    assert _itemized(r.stdout) == [], r.stdout


def test_a_replaced_files_line_says_what_differs(tmp_path: Path, backend: str) -> None:
    """As rsync -i: s for size, t for mtime (T without -t), p, o, g, x -- not a
    fixed ``>f.st......`` -- with -n and for real."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("size", "perm", "owner", "xattr", "same"):
        write(src / name, b"abc", 0o644)
    fix_times(src)
    assert run_cli(["-aX", "--backend", backend, f"{src}/", str(dst)]).returncode == 0
    write(src / "size", b"abcd")
    os.chmod(src / "perm", 0o600)
    os.setxattr(src / "xattr", "user.new", b"1")
    want = {"size": ">f.st......", "perm": ">f..tp.....", "xattr": ">f..t.....x",
            "owner": ">f..t......"}
    if IS_ROOT:
        os.chown(src / "owner", 4321, -1)
        want["owner"] = ">f..t.o...."
    for name in want:
        os.utime(src / name, ns=(1_650_000_000_000_000_000, 1_650_000_000_000_000_000))
    _items_dry_then_real(src, dst, backend, "-aX", want)
    assert os.getxattr(dst / "xattr", "user.new") == b"1"
    # -I sends what is current: nothing differs
    _items_dry_then_real(src, dst, backend, "-aXI",
                         {n: ">f........." for n in [*want, "same"]})
    # without -t a file sent gets the transfer's time (T)
    write(src / "size", b"abcde")
    _items_dry_then_real(src, dst, backend, "-rlpgoDX", {"size": ">f.sT......"})


@pytest.mark.parametrize("dry", [False, True])
def test_a_directorys_line_comes_before_its_contents(tmp_path: Path, backend: str,
                                                     dry: bool) -> None:
    """As rsync writes them: an existing directory whose attributes change is
    listed as its contents start, the root's line first of all."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d1" / "d2").mkdir(parents=True)
    write(src / "d1" / "d2" / "f", b"f")
    fix_times(src)
    assert run_cli(["-a", "--backend", backend, f"{src}/", str(dst)]).returncode == 0
    write(src / "d1" / "new", b"new")
    write(src / "d1" / "d2" / "g", b"g")
    os.chmod(src / "d1", 0o705)
    os.chmod(src, 0o750)
    fix_times(src, 1_700_000_000_000_000_000)  # (every directory's mtime changes)
    r = run_cli(["-a" + ("n" if dry else ""), "-v", "--backend", backend, f"{src}/", str(dst)])
    assert r.returncode == 0, r
    lines = [(m.group(2), m.group(1)) for m in map(_ITEM.match, r.stdout.splitlines()) if m]
    order = [p for p, _ in lines]
    assert dict(lines) == {"./": ".d..tp.....", "d1/": ".d..tp.....", "d1/d2/": ".d..t......",
                           "d1/new": ">f+++++++++", "d1/d2/g": ">f+++++++++",
                           "d1/d2/f": ">f..t......"}, r.stdout
    assert order[0] == "./", r.stdout
    assert order.index("d1/") < min(order.index("d1/new"), order.index("d1/d2/"))
    assert order.index("d1/d2/") < min(order.index("d1/d2/g"), order.index("d1/d2/f"))


@pytest.mark.skipif(not IS_ROOT, reason="needs root (trusted.* xattrs: user.* cannot be "
                    "set on symlinks and FIFOs)")
def test_dry_run_itemizes_xattr_changes_of_symlinks_and_fifos(tmp_path: Path,
                                                              backend: str) -> None:
    """An unchanged symlink's or FIFO's xattrs that differ are listed by -n as by
    the real run (``.L........x``, ``.S........x``), and -n leaves them as they
    were: names added, changed and gone."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    os.symlink("target", src / "link")
    os.mkfifo(src / "fifo")
    os.symlink("other", src / "same")
    for name in ("link", "fifo", "same"):
        os.setxattr(src / name, "trusted.keep", b"1", follow_symlinks=False)
        os.setxattr(src / name, "trusted.old", b"1", follow_symlinks=False)
    fix_times(src)
    assert run_cli(["-aX", "--backend", backend, f"{src}/", str(dst)]).returncode == 0
    os.setxattr(src / "link", "trusted.keep", b"2", follow_symlinks=False)
    os.setxattr(src / "fifo", "trusted.new", b"3", follow_symlinks=False)
    os.removexattr(src / "fifo", "trusted.old", follow_symlinks=False)
    fix_times(src)  # (xattr changes touch ctime only: the times still match)
    _items_dry_then_real(src, dst, backend, "-aX",
                         {"link -> target": ".L........x", "fifo": ".S........x"})
    for name in ("link", "fifo", "same"):
        have = {n: os.getxattr(dst / name, n, follow_symlinks=False)
                for n in os.listxattr(dst / name, follow_symlinks=False)}
        assert have == {n: os.getxattr(src / name, n, follow_symlinks=False)
                        for n in os.listxattr(src / name, follow_symlinks=False)}, name


@pytest.mark.skipif(not IS_ROOT, reason="needs root (mounts a ramfs)")
def test_xattrs_a_destination_cannot_hold_are_not_itemized(tmp_path: Path,
                                                           backend: str) -> None:
    """ramfs takes no xattrs: a re-run has nothing it could change, and -n and the
    real run both say so (no line), on every run.  Each real run tries to set
    them again and says once that it could not (exit 23, as rsync's)."""
    from .test_copy_support import mounted

    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "d" / "f", b"data")
    os.setxattr(src / "d" / "f", "user.a", b"1")
    os.setxattr(src / "d", "user.b", b"2")
    fix_times(src)
    with mounted("ramfs", tmp_path / "ram") as ram:
        dst = ram / "dst"
        # (the first copy loses the xattrs asked for: 23)
        assert run_cli(["-aX", "--backend", backend, f"{src}/", str(dst)]).returncode == 23
        for _ in range(2):
            _items_dry_then_real(src, dst, backend, "-aX", {}, real_rc=23)


@pytest.mark.skipif(not IS_ROOT, reason="needs root (runs the copy as another user)")
def test_a_dry_run_leaves_an_unreadable_destination_file_alone(tmp_path: Path,
                                                               backend: str) -> None:
    """A non-root -n -v -X with a destination file of its own without u+r: the
    real run would open it up for a moment to compare its xattrs; the dry run
    changes nothing, not even its ctime."""
    from .test_copy_support import UNPRIV_PRELUDE, nobodys_tree, traversable

    src, dst = nobodys_tree(tmp_path)
    work = src.parent
    with traversable(work):
        r = run_cli(["-rtX", "--backend", backend, f"{src}/", str(dst)],
                    prelude=UNPRIV_PRELUDE, cwd="/")
        assert r.returncode == 0, r
        os.setxattr(src / "f", "user.a", b"2")
        os.chmod(dst / "f", 0o200)
        before = os.stat(dst / "f")
        r = run_cli(["-rtXnv", "--backend", backend, f"{src}/", str(dst)],
                    prelude=UNPRIV_PRELUDE, cwd="/")
    after = os.stat(dst / "f")
    assert r.returncode == 0, r
    assert (after.st_mode, after.st_ctime_ns) == (before.st_mode, before.st_ctime_ns)


def test_verbose_with_non_utf8_names_on_a_strict_stdout(tmp_path: Path, backend: str) -> None:
    src = os.fsencode(tmp_path / "src")
    os.mkdir(src)
    for i in range(20):
        write(os.path.join(src, b"\xff-%d" % i), b"x")
    fix_times(src)
    r = run_cli(["-av", "--backend", backend, os.fsencode(tmp_path / "src") + b"/",
                 tmp_path / "dst"], env=cli_env(PYTHONIOENCODING="utf-8:strict"))
    assert "Traceback" not in r.stderr
    assert r.returncode == 0, r
    assert_same_tree(src, tmp_path / "dst")
    assert len(_itemized(r.stdout)) == 20
    assert "\\#377-0" in r.stdout  # escaped as rsync does

def test_verbose_keeps_one_line_per_entry_for_newline_names(tmp_path: Path,
                                                            backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a\n>f+++++++++ forged", b"x")
    fix_times(src)
    r = run_cli(["-av", "--backend", backend, f"{src}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    assert_same_tree(src, tmp_path / "dst")
    assert len(_itemized(r.stdout)) == 1, r.stdout  # (and no forged line)


def test_quiet_prints_nothing_on_success(tmp_path: Path, tree: Path, backend: str) -> None:
    r = run_cli(["-aHX", "-q", "--backend", backend, f"{tree}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    assert r.stdout == ""
    assert r.stderr == ""
    assert_same_tree(tree, tmp_path / "dst")


def test_quiet_still_reports_errors(tmp_path: Path, tree: Path, backend: str) -> None:
    r = run_cli(["-a", "-q", "--backend", backend, str(tmp_path / "missing"), f"{tree}/",
                 str(tmp_path / "dst")])
    assert r.returncode == 23, r
    assert len(r.err_lines) == 1 and "missing" in r.err_lines[0], r
    assert r.stdout == ""


def test_no_progress_output_without_a_terminal(tmp_path: Path, tree: Path,
                                              backend: str) -> None:
    r = run_cli(["-a", "--progress", "--backend", backend, f"{tree}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    assert r.stderr == "" and r.stdout == ""


def test_dry_run_into_a_new_destination(tmp_path: Path, tree: Path, backend: str) -> None:
    dst = tmp_path / "dst"
    before = snapshot(tree)
    r = run_cli(["-a", "-n", "-v", "--backend", backend, f"{tree}/", str(dst)])
    assert r.returncode == 0, r
    assert not dst.exists() and not os.path.lexists(dst)
    assert sorted(_itemized(r.stdout)) == sorted(_entries(tree))
    assert changes_between(before, snapshot(tree), dirs=False) == []


def test_dry_run_changes_nothing_in_an_existing_destination(tmp_path: Path, tree: Path,
                                                            backend: str) -> None:
    dst = tmp_path / "dst"
    r = run_cli(["-aHAX", "--backend", backend, f"{tree}/", str(dst)])
    assert r.returncode == 0, r
    # changes of every kind in the source
    write(tree / "small", b"changed content")
    write(tree / "brand-new", b"new")
    (tree / "new-dir").mkdir()
    write(tree / "new-dir" / "f", b"f")
    os.unlink(tree / "rel-link")
    os.symlink("one", tree / "rel-link")
    os.chmod(tree / "d1", 0o700)
    os.mkfifo(tree / "fifo2")
    for p in ("small", "brand-new", "new-dir/f", "new-dir", "rel-link", "fifo2"):
        set_times(tree / p, 1_000_000_000_000_000_000)
    # and a leftover temporary name in the destination
    write(dst / ".x.pyuring-tmp-1-1", b"leftover")
    before = snapshot(dst)
    r = run_cli(["-aHAX", "-n", "-v", "--backend", backend, f"{tree}/", str(dst)])
    assert r.returncode == 0, r
    assert changes_between(before, snapshot(dst)) == []
    items = set(_itemized(r.stdout))
    assert {"small", "brand-new", "new-dir/", "new-dir/f", "rel-link", "fifo2"} <= items, items
    assert not items & {"one", "big", "d1/d2/f", "sparse"}, items


def test_dry_run_lists_hard_links(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "a", b"x")
    os.link(src / "a", src / "d" / "b")
    os.link(src / "a", src / "c")
    fix_times(src)
    r = run_cli(["-aH", "-n", "-v", "--backend", backend, f"{src}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    assert sorted(_itemized(r.stdout)) == sorted(_entries(src))


# --------------------------------------------------------------------------------------
# engine choices
# --------------------------------------------------------------------------------------
def test_backend_auto_picks_uring_when_available(tmp_path: Path, tree: Path) -> None:
    r = run_cli(["-a", "--json", "--backend", "auto", f"{tree}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    st = r.json()
    assert st["backend"] == ("uring" if URING else "sync")
    assert (st["backend_note"] == "") == URING
    r = run_cli(["-a", "--json", f"{tree}/", str(tmp_path / "dst2")])
    assert r.json()["backend"] == st["backend"]


@pytest.mark.parametrize("knobs", [
    ["--queue-depth", "2", "--max-files-in-flight", "1"],
    ["--queue-depth", "4", "--max-files-in-flight", "3"],
    ["--queue-depth", "8", "--max-files-in-flight", "4096"],
    ["--queue-depth", "32768", "--max-files-in-flight", "1"],
    ["--data-path", "ring", "--small-file-max", "1"],
    ["--data-path", "copy_file_range", "--small-file-max", "0"],
    ["--fsync", "--numeric-ids"],
], ids=lambda k: "_".join(a.strip("-") for a in k))
def test_engine_knobs_give_identical_trees(tmp_path: Path, tree: Path, backend: str,
                                           knobs: List[str]) -> None:
    r = run_cli(["-aHX", "--json", "--backend", backend, *knobs, f"{tree}/",
                 str(tmp_path / "dst")])
    assert "Traceback" not in r.stderr
    assert r.returncode == 0, r
    assert_same_tree(tree, tmp_path / "dst")
    if "--fsync" in knobs and backend == "uring":
        # every file with data is fsynced (the ring counts its FSYNC SQEs; the large
        # path calls fsync directly); "empty" has no data to flush
        st = r.json()
        assert st["sqes_by_op"].get("FSYNC", 0) + st["direct_syscalls"].get("fsync", 0) \
            >= st["transferred"] - 1


def test_queue_depth_one(tmp_path: Path, tree: Path) -> None:
    check_backend("uring")
    r = run_cli(["-aHX", "--backend", "uring", "--queue-depth", "1", f"{tree}/",
                 str(tmp_path / "dst")])
    assert "internal error" not in r.stderr, r
    if r.returncode == 1:
        assert not (tmp_path / "dst").exists()  # refused up front
    else:
        assert r.returncode == 0, r
        assert_same_tree(tree, tmp_path / "dst")


@pytest.mark.parametrize("args,needle", [
    (["--bogus-flag"], "--bogus-flag"),
    (["-a", "-Z"], "-Z"),
    (["-q", "-v"], "-q"),
    (["--backend", "fast"], "fast"),
    (["--queue-depth", "0"], "--queue-depth"),
    (["--queue-depth", "many"], "many"),
    (["--max-files-in-flight", "0"], "--max-files-in-flight"),
    (["--data-path", "mmap"], "mmap"),
    # int() would take these; rsync does not
    (["--queue-depth", "1_024"], "1_024"),
    (["--max-files-in-flight", " 64"], " 64"),
    (["--queue-depth", "\u0661\u0666"], "--queue-depth"),  # (Arabic-Indic "16")
    (["--io-workers", "+4"], "+4"),
], ids=["unknown-long", "unknown-short", "quiet-verbose", "backend", "qd-zero", "qd-word",
        "mif-zero", "data-path", "underscore", "space", "other-digits", "plus"])
def test_usage_errors(tmp_path: Path, tree: Path, args: List[str], needle: str) -> None:
    dst = tmp_path / "dst"
    r = run_cli([*args, "-a", f"{tree}/", str(dst)])
    assert "Traceback" not in r.stderr
    assert r.returncode == 1, r
    assert len(r.err_lines) == 1, r
    assert needle in r.err_lines[0], r
    assert r.stdout == ""
    assert not dst.exists()


@pytest.mark.parametrize("args", [[], ["only-one"], ["-a"], ["-a", "--json"],
                                  ["-a", "", "dst"], ["-a", "src", ""]],
                         ids=["nothing", "one-path", "flag-only", "flags-only", "empty-src",
                              "empty-dst"])
def test_missing_operands(tmp_path: Path, args: List[str]) -> None:
    """Also "" as a path: no path at all (rsync says so too), not "." nor ENOENT."""
    if "src" in args:
        write(tmp_path / "src", b"s")
    before = sorted(os.listdir(tmp_path))
    r = run_cli(args, cwd=tmp_path)
    assert "Traceback" not in r.stderr
    assert r.returncode == 1, r
    assert len(r.err_lines) == 1, r
    assert any(w in r.err_lines[0] for w in ("SRC", "DST", "empty")), r
    assert sorted(os.listdir(tmp_path)) == before


def _thousand_files(src: Path) -> Path:
    src.mkdir()
    for i in range(1000):
        write(src / f"file-{i:04d}-{'x' * 60}", b"y" * 5000)
    fix_times(src)
    return src


def _progress_cmd(src: Path, dst: Path, backend: str) -> List[str]:
    return [sys.executable, "-m", "pyuring.copy", "-a", "-v", "--progress", "--backend",
            backend, f"{src}/", str(dst)]


def test_progress_line_on_a_terminal(tmp_path: Path, backend: str) -> None:
    """--progress draws one overwritten line on a terminal stderr, ended by a newline.

    The test reads the -v lines slowly (1 ms each) through a one-page pipe, so
    the copy of 1,000 files lasts about a second whatever the machine: long enough
    for progress updates, which the CLI draws a few times a second.
    """
    import fcntl
    import pty
    import select
    import subprocess
    import threading
    import time

    src = _thousand_files(tmp_path / "src")
    master, slave = pty.openpty()
    p = subprocess.Popen(_progress_cmd(src, tmp_path / "dst", backend),
                         env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=slave)
    assert p.stdout is not None
    # a one-page pipe: the child can run ahead of the test by a few lines only
    fcntl.fcntl(p.stdout.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    term = bytearray()

    def drain(wait: float) -> bool:
        ready, _, _ = select.select([master], [], [], wait)
        if ready:
            term.extend(os.read(master, 65536))
        return bool(ready)

    def read_terminal() -> None:
        while p.poll() is None:
            drain(0.2)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    lines = 0
    for _line in p.stdout:
        lines += 1
        time.sleep(0.001)
    rc = p.wait(timeout=120)
    reader.join(timeout=120)
    while drain(0):
        pass
    os.close(slave)
    os.close(master)
    assert rc == 0
    assert lines == 1002  # the new DST's ./, 1000 files and the summary line
    text = term.decode("utf-8", "replace")
    assert "Traceback" not in text
    updates = [u for u in text.replace("\r\n", "\n").split("\r") if u.strip()]
    assert updates, f"no progress line on the terminal: {text!r}"
    assert re.search(r"[\d,]+ files +[\d,.]+ MB +[\d,.]+ MB/s +ETA", updates[-1]), text
    assert text.endswith("\n")
    assert_same_tree(src, tmp_path / "dst")


def _screen_lines(text: str) -> List[str]:
    """The lines a terminal shows for ``text``: a carriage return goes back to
    the start of the line, and what follows overwrites it."""
    lines: List[str] = []
    buf: List[str] = []
    col = 0
    for ch in text:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(buf).rstrip())
            buf, col = [], 0
        else:
            if col < len(buf):
                buf[col] = ch
            else:
                buf.append(ch)
            col += 1
    return lines


def test_progress_and_verbose_lines_on_one_terminal(tmp_path: Path, backend: str) -> None:
    """-v --progress with stdout and stderr on one terminal: the progress line
    is blanked before each -v line, which then starts at the left edge.
    (Before: "...ETA 0s>f+++++++++ d06/f087", a trial found.)  And the ETA
    is "--" until the walk has seen every entry: before, the bytes left were
    only those in flight, and it said 0 s at 46 %.  Under PYTHONUNBUFFERED no
    line loses its end: a write cut short (io_uring task work interrupts a
    write into a full terminal) is finished (cli._whole_writes)."""
    import pty
    import select
    import subprocess
    import time

    src = _thousand_files(tmp_path / "src")
    master, slave = pty.openpty()
    p = subprocess.Popen(_progress_cmd(src, tmp_path / "dst", backend),
                         env=cli_env(PYTHONUNBUFFERED="1"), stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave)
    os.close(slave)
    raw = bytearray()
    try:
        while True:  # read slowly: the copy lasts a second or so, long enough for updates
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 256)
                except OSError:  # (EIO: the child closed the terminal)
                    break
                if not chunk:
                    break
                raw.extend(chunk)
                time.sleep(0.003)
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert rc == 0
    text = raw.decode("utf-8", "replace")
    shown = _screen_lines(text)
    items = [line for line in shown if "+++++++++" in line]
    assert len(items) == 1001, [line for line in shown if "+++" not in line][:9]
    assert all(line.startswith((">f+++++++++ file-", "cd+++++++++ ./")) for line in items), \
        [line for line in items if not line.startswith((">f", "cd"))][:3]
    updates = re.findall(r"([\d,]+) files +[\d,.]+ MB +[\d,.]+ MB/s +ETA +(\S+)", text)
    assert updates, text[:500]
    everything = max(int(n.replace(",", "")) for n, _eta in updates)
    assert all(int(n.replace(",", "")) == everything for n, eta in updates if eta != "--"), \
        updates
    assert_same_tree(src, tmp_path / "dst")


@pytest.mark.parametrize("kind", ["file", "fifo", "symlink"])
def test_dry_run_says_a_full_directory_cannot_be_replaced(tmp_path: Path, backend: str,
                                                          kind: str) -> None:
    """The source has a file (FIFO, symlink) where the destination has a
    directory with something in it: the real run cannot replace it (exit 23,
    one message), and -n says the same and lists nothing for it (as rsync -n;
    before, it promised ``>f+++++++++ x`` and exit 0) -- and changes nothing."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    if kind == "file":
        write(src / "x", b"a")
    elif kind == "fifo":
        os.mkfifo(src / "x")
    else:
        os.symlink("t", src / "x")
    write(src / "other", b"o")
    (dst / "x").mkdir(parents=True)
    write(dst / "x" / "keep", b"keep")
    runs = []
    for flags in ("-anv", "-av"):
        r = run_cli([flags, "--json", "--backend", backend, f"{src}/", str(dst)])
        assert r.returncode == 23, r
        msgs = [ln for ln in r.err_lines if ln.startswith("pyuring-copy:")]
        assert len(msgs) == 1 and "cannot replace directory" in msgs[0], r
        runs.append((sorted(_itemized(r.stderr)),  # (--json: the -v lines go to stderr)
                     {k: r.json()[k] for k in ("errors", "regular_files", "transferred")}))
        if flags == "-anv":
            assert not (dst / "other").exists()
    assert runs[0] == runs[1]
    assert runs[0][0] == ["other"]
    assert (dst / "x" / "keep").read_bytes() == b"keep"


def test_verbose_itemizes_a_changed_symlink_target_or_device_number(tmp_path: Path,
                                                                     backend: str) -> None:
    """A symlink (or, as root, a device) that is there but differs is itemized
    as rsync -i does, ``cLc.t......``, not as made anew (``cL+++++++++``); -n
    says the same."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    os.symlink("f1", src / "sl")
    if IS_ROOT:
        os.mknod(src / "chr", 0o644 | stat.S_IFCHR, os.makedev(1, 3))
    fix_times(src)
    assert run_cli(["-a", "--backend", backend, f"{src}/", str(dst)]).returncode == 0
    os.unlink(dst / "sl")
    os.symlink("f2", dst / "sl")
    want = {"sl -> f1": "cLc.t......"}
    if IS_ROOT:
        os.unlink(dst / "chr")
        os.mknod(dst / "chr", 0o644 | stat.S_IFCHR, os.makedev(1, 5))
        want["chr"] = "cDc.t......"
    for flags in ("-anv", "-av"):
        r = run_cli([flags, "--backend", backend, f"{src}/", str(dst)])
        assert r.returncode == 0, r
        lines = {m.group(2): m.group(1) for m in map(_ITEM.match, r.stdout.splitlines())
                 if m and m.group(2) != "./"}
        assert lines == want, r.stdout
    assert os.readlink(dst / "sl") == "f1"


def test_new_destination_line_comes_with_the_first_contents_root(tmp_path: Path,
                                                                  backend: str) -> None:
    """``f d/ NEW``: DST is made by this run, and its ``cd+++++++++ ./`` comes
    with d/'s contents although a file came first (before, ``.d..t...... ./``)."""
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "in", b"i")
    write(tmp_path / "f", b"f")
    r = run_cli(["-av", "--backend", backend, str(tmp_path / "f"), f"{tmp_path / 'd'}/",
                 str(tmp_path / "new")])
    assert r.returncode == 0, r
    lines = {m.group(2): m.group(1) for m in map(_ITEM.match, r.stdout.splitlines()) if m}
    assert lines == {"f": ">f+++++++++", "./": "cd+++++++++", "in": ">f+++++++++"}, r.stdout


@pytest.mark.skipif(not IS_ROOT, reason="needs root (runs the copy as another user)")
def test_dry_run_of_replacing_an_unreadable_empty_directory(tmp_path: Path,
                                                            backend: str) -> None:
    """As non-root, an empty destination directory without r where the source
    has a file: rmdir needs no r, so the real run replaces it, and -n, which
    cannot list it, must not say otherwise (lists it, exit 0)."""
    from .test_copy_support import UNPRIV_PRELUDE, traversable

    work = tmp_path / "w"
    (work / "a").mkdir(parents=True)
    write(work / "a" / "x", b"1")
    (work / "b" / "x").mkdir(parents=True)
    os.chmod(work / "b" / "x", 0)
    for p in (work, work / "a", work / "a" / "x", work / "b", work / "b" / "x"):
        os.chown(p, 65534, 65534)
    with traversable(work):
        for flags in ("-anv", "-av"):
            r = run_cli([flags, "--backend", backend, f"{work / 'a'}/", str(work / "b")],
                        prelude=UNPRIV_PRELUDE, cwd="/")
            assert r.returncode == 0, r
            assert _itemized(r.stdout) == ["x"], r.stdout
    assert (work / "b" / "x").read_bytes() == b"1"
