"""Standard output that fails: the copy goes on, the failure is told once.

``-v`` (or --stats / --json) into a full disk, a pipe whose reader left, or a
closed stdout: as cp, the copy completes, one line on stderr says what
happened, and the exit status is 13 (rsync's "errors with program
diagnostics") unless the copy itself has a worse one.  A closed standard fd is
never handed out to a destination file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Callable, List, Optional

import pytest

from .test_copy_support import (
    HANG_GUARD,
    build_mixed_tree,
    cli_env,
    fix_times,
    run_cli,
    write,
)
from .treecompare import assert_same_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A mixed tree plus 2,000 long names: -v writes ~260 KB, more than a pipe
    and stdout's buffer hold, so writes go on after a reader has gone."""
    src = build_mixed_tree(tmp_path / "src", big=1 << 20)
    (src / "many").mkdir()
    for i in range(2000):
        write(src / "many" / (f"{i:05d}-" + "n" * 120), b"x")
    fix_times(src)
    return src


def _closing(*fds: int) -> Callable[[], None]:
    def close() -> None:
        for fd in fds:
            os.close(fd)
    return close


def _err_lines(stderr: bytes) -> List[str]:
    return [ln for ln in stderr.decode(errors="replace").splitlines() if ln]


def _run(args: List[str], stdout: Optional[IO[Any]], preexec: Optional[Callable[[], None]] = None
         ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pyuring.copy", *args], env=cli_env(),
                          stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                          preexec_fn=preexec, timeout=HANG_GUARD)


def _assert_told(stderr: bytes, errno_text: str) -> None:
    lines = _err_lines(stderr)
    assert "Traceback" not in stderr.decode(errors="replace"), lines
    assert lines == [f"pyuring-copy: cannot write to standard output: {errno_text}; "
                     "the copy itself went on"], lines


@pytest.mark.parametrize("flags", [["-v"], ["--stats"], ["--json"]])
def test_stdout_on_a_full_disk(tmp_path: Path, tree: Path, backend: str,
                               flags: List[str]) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    dst = tmp_path / "dst"
    with open("/dev/full", "wb") as full:
        r = _run(["-aHX", *flags, "--backend", backend, f"{tree}/", str(dst)], full)
    assert r.returncode == 13, r
    _assert_told(r.stderr, "No space left on device (28)")
    assert_same_tree(tree, dst)


def test_stdout_reader_leaves_after_one_line(tmp_path: Path, tree: Path,
                                             backend: str) -> None:
    """``pyuring-copy -av ... | head -1``: Python ignores SIGPIPE, so the writes
    fail with EPIPE -- inside the engine's itemize callback, where an exception
    once derailed the run into a hang."""
    dst = tmp_path / "dst"
    proc = subprocess.Popen([sys.executable, "-m", "pyuring.copy", "-aHXv", "--backend",
                             backend, f"{tree}/", str(dst)], env=cli_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # (the reader is gone: every later write fails)
    try:
        err = proc.stderr.read()
        code = proc.wait(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("pyuring-copy hung after its reader left") from None
    finally:
        proc.stderr.close()
    assert re.match(rb"[>ch.][fdLDS][.+a-zT]{9} ", first), first
    assert code == 13, err
    _assert_told(err, "Broken pipe (32)")
    assert_same_tree(tree, dst)


@pytest.mark.parametrize("verbose", [True, False])
def test_closed_stdout(tmp_path: Path, tree: Path, backend: str, verbose: bool) -> None:
    """``>&-``: Python leaves sys.stdout None.  With nothing to print the copy
    is simply done; with -v the lines cannot go anywhere (EBADF), as cp says."""
    dst = tmp_path / "dst"
    r = _run(["-aHX" + ("v" if verbose else ""), "--backend", backend, f"{tree}/", str(dst)],
             None, _closing(1))
    if verbose:
        assert r.returncode == 13, r
        _assert_told(r.stderr, "Bad file descriptor (9)")
    else:
        assert r.returncode == 0 and _err_lines(r.stderr) == [], r
    assert_same_tree(tree, dst)


def test_closed_std_fds_are_not_handed_to_files(tmp_path: Path, backend: str) -> None:
    """With fds 1 and 2 closed the first opens would get them: a message meant
    for stderr -- here, a vanished source -- would then be written into a
    destination file.  Every copied file must hold its own bytes only."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        write(src / f"f{i}", f"file {i}\n".encode())
    fix_times(src)
    dst = tmp_path / "dst"
    r = _run(["-av", "--backend", backend, f"{src}/", str(tmp_path / "missing"), str(dst)],
             None, _closing(1, 2))
    assert r.returncode == 23, r  # (the missing source; no stdout: told nowhere)
    assert_same_tree(src, dst)
    for i in range(20):
        assert (dst / f"f{i}").read_bytes() == f"file {i}\n".encode()


def test_interrupt_while_starting_is_no_traceback(tmp_path: Path) -> None:
    """Ctrl-C while the command line's modules load: exit 20, no traceback."""
    prelude = (
        "import sys\n"
        "class _Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyuring.copy.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, _Stop())\n"
        "from pyuring.copy.__main__ import run\n"
        "run()\n")
    r = subprocess.run([sys.executable, "-c", prelude, "-a", str(tmp_path),
                        str(tmp_path / "dst")], env=cli_env(), capture_output=True,
                       timeout=HANG_GUARD)
    assert r.returncode == 20, r
    assert b"Traceback" not in r.stderr, r
    assert not (tmp_path / "dst").exists()


def test_output_fine_exits_zero(tmp_path: Path, tree: Path) -> None:
    """The control: the same copy with a working stdout prints every line."""
    r = run_cli(["-av", f"{tree}/", str(tmp_path / "dst")])
    assert r.returncode == 0 and r.err_lines == [], r
    assert r.stdout.count("\n") > 2000
