"""Ctrl-C during ``copytree()`` / ``Copier.run()`` in a program that left SIGINT to Python.

The copy stops the clean way (what is in flight finishes, every fd of the run
is closed, no partial file) and KeyboardInterrupt is raised afterwards; a
program's own SIGINT handler is left alone.  The SIGINT is sent by the child
itself at a set wait of its engine, so the copy is always mid-way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from .test_copy_support import check_backend, cli_env, write

_CHILD = r"""
import os, signal, sys
from pyuring.copy import Copier, Options, copytree
from pyuring.copy import engine as E

src, dst, backend, own, at, api = sys.argv[1:7]
real_run = E.Engine.run
waits = [0]

def run(self):
    ex = self.ex
    real = ex.run
    def counted(*a, **k):
        waits[0] += 1
        if waits[0] == int(at):
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)
    ex.run = counted
    return real_run(self)

E.Engine.run = run
calls = []
if own == "own":
    signal.signal(signal.SIGINT, lambda s, f: calls.append(s))
before = set(os.listdir("/proc/self/fd"))
try:
    if api == "copytree":
        copytree(src, dst, backend=backend, queue_depth=16, max_files_in_flight=32)
    else:
        o = Options.archive(backend=backend, queue_depth=16, max_files_in_flight=32)
        Copier(o, lambda msg: None).run([src + "/"], dst)
    print("FINISHED", len(calls))
except KeyboardInterrupt:
    left = sorted(set(os.listdir("/proc/self/fd")) - before)
    print("INTERRUPTED", len(calls), "left", " ".join(left) or "none")
    print("HANDLER", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


def _tree(root: Path) -> Path:
    for d in range(6):
        (root / f"d{d}" / f"s{d % 2}").mkdir(parents=True)
        for i in range(150):
            write(root / f"d{d}" / f"s{d % 2}" / f"f{i}", os.urandom((i * 37) % 5000))
    return root


def _child(src: Path, dst: Path, backend: str, own: str, api: str = "copytree") -> List[str]:
    # (the wait at which the child interrupts itself: mid-way through this tree)
    at = "60" if backend == "uring" else "12"
    p = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(dst), backend, own, at,
                        api],
                       env=cli_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.split("\n")


@pytest.mark.parametrize("api", ["copytree", "Copier.run"])
@pytest.mark.parametrize("backend", ["uring", "sync"])
def test_ctrl_c_stops_the_copy_cleanly_then_raises(tmp_path: Path, backend: str,
                                                   api: str) -> None:
    check_backend(backend)
    src = _tree(tmp_path / "src")
    dst = tmp_path / "dst"
    out = _child(src, dst, backend, "python", api)
    assert out[0] == "INTERRUPTED 0 left none", out
    assert out[1] == "HANDLER True", out  # (Python's own handler back in place)
    copied = [p for p in dst.rglob("*") if p.is_file()]
    assert 0 < len(copied) < 900  # (stopped mid-way)
    for p in copied:
        assert ".pyuring-tmp-" not in p.name
        assert p.read_bytes() == (src / p.relative_to(dst)).read_bytes()  # (never partial)


def test_a_programs_own_sigint_handler_is_left_alone(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    dst = tmp_path / "dst"
    out = _child(src, dst, "sync", "own")
    assert out[0] == "FINISHED 1", out
    assert len([p for p in dst.rglob("*") if p.is_file()]) == 900


# A signal while ``python -m pyuring.copy`` is still importing the engine: a
# meta-path finder sends it when the import of a given module begins, before
# the command line's own handlers exist.
_START = r"""
import os, runpy, signal, sys
sig, module = getattr(signal, sys.argv[1]), sys.argv[2]

class Finder:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), sig)
        return None

sys.meta_path.insert(0, Finder())
sys.argv = ["pyuring-copy", "-a", sys.argv[3], sys.argv[4]]
runpy.run_module("pyuring.copy", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["pyuring.copy.api", "pyuring.copy.engine", "pyuring.copy.cli"])
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_during_start_up_is_exit_20_without_traceback(tmp_path: Path, sig: str,
                                                                module: str) -> None:
    (tmp_path / "src").mkdir()
    write(tmp_path / "src" / "f", b"data")
    p = subprocess.run([sys.executable, "-c", _START, sig, module, str(tmp_path / "src"),
                        str(tmp_path / "dst")],
                       env=cli_env(), capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr) == (20, "pyuring-copy: interrupted\n")
    assert not (tmp_path / "dst").exists()  # (nothing begun)


_FIFOS = r"""
import os, sys
from pyuring.copy import filecopy
src, dst = sys.argv[1:3]
real = filecopy.start_file
started = set()

def start_file(eng, job):
    started.add(job.name)
    if len(started) == 20:  # every file not started yet becomes a FIFO nobody writes
        for n in os.listdir(src):
            if n.encode() not in started:
                os.unlink(os.path.join(src, n))
                os.mkfifo(os.path.join(src, n))
        os.write(1, b"swapped\n")
    return real(eng, job)

filecopy.start_file = start_file
sys.argv = ["pyuring-copy", "-a", "--backend", "sync", src + "/", dst]
from pyuring.copy.__main__ import run
run()
"""


def _signal_after(p: subprocess.Popen[bytes], delay: float, sig: int,
                  timeout: float = 20) -> None:
    """Send ``sig`` to ``p``, still running, after ``delay`` seconds; wait for
    it to end (killed if it does not within ``timeout``)."""
    try:
        time.sleep(delay)
        assert p.poll() is None
        p.send_signal(sig)
        p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sync_ctrl_c_ends_opens_blocked_on_fifos(tmp_path: Path) -> None:
    """Source files swapped for FIFOs after their statx: each open blocks.  One
    SIGINT ends the copy (exit 20): the sync backend makes no further source
    open once stopping.  Before, each signal ended one open and the next
    queued file blocked again, so only SIGKILL ended it."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        write(src / f"f{i:03d}", b"x" * 100)
    p = subprocess.Popen([sys.executable, "-c", _FIFOS, str(src), str(tmp_path / "dst")],
                         env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline() == b"swapped\n"
    _signal_after(p, 0.5, signal.SIGINT)  # (blocked in an open by now)
    assert p.returncode == 20, p.stderr.read() if p.stderr else b""
    for f in (tmp_path / "dst").iterdir():
        assert f.read_bytes() == b"x" * 100  # (only whole files)


def _many_files(src: Path) -> None:
    for d in range(10):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(400):
            write(src / f"d{d}" / f"a-rather-long-file-name-to-fill-a-pipe-{i:04d}", b"x" * 10)


def _whole_files_only(dst: Path) -> None:
    files = [f for f in dst.rglob("*") if f.is_file()]
    assert files and all(f.read_bytes() == b"x" * 10 for f in files)
    assert not [f for f in files if "pyuring-tmp" in f.name]


@pytest.mark.parametrize("stderr", ["own pipe", "2>&1"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_copy_whose_output_reader_stopped_reading(tmp_path: Path, sig: int,
                                                                  stderr: str) -> None:
    """-v into a pipe nobody reads (a paused pager, a stalled log): the write
    of an itemized line blocks, and a signal's EINTR only made Python write
    again (PEP 475) -- SIGINT and SIGTERM never ended the copy, only SIGKILL
    (found by a trial; rsync -av exits 20 at once).  Now the handler ends a
    write that stays blocked for a second: exit 20, only whole files.  With
    2>&1 the closing lines would block on the same pipe: it is let go too."""
    src = tmp_path / "src"
    _many_files(src)
    p = subprocess.Popen([sys.executable, "-m", "pyuring.copy", "-av", str(src) + "/",
                          str(tmp_path / "dst")], env=cli_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE if stderr == "own pipe" else subprocess.STDOUT)
    # (still running then, blocked: 4,000 lines of -v are more than a pipe holds)
    _signal_after(p, 1.5, sig)
    err = p.stderr.read().decode() if p.stderr is not None else ""
    assert p.returncode == 20, err
    if stderr == "own pipe":
        assert err.splitlines() == [
            "pyuring-copy: interrupted: stopped cleanly, no partial file left (exit 20)",
            "pyuring-copy: cannot write to standard output: the reader stopped reading (4)"]
    _whole_files_only(tmp_path / "dst")


def test_a_signal_keeps_the_output_of_a_slow_reader(tmp_path: Path) -> None:
    """A reader that is slow but reads (a pager scrolled now and then): the
    output is not given up on a signal -- every -v line written reaches it,
    with the closing lines, and no "stopped reading" (a review found the
    first version gave up any write a signal met)."""
    import threading

    src = tmp_path / "src"
    _many_files(src)
    p = subprocess.Popen([sys.executable, "-m", "pyuring.copy", "-av", str(src) + "/",
                          str(tmp_path / "dst")], env=cli_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    got = bytearray()
    assert p.stdout is not None

    def slow_reader() -> None:
        assert p.stdout is not None
        while True:
            chunk = p.stdout.read1(2048)  # type: ignore[attr-defined]
            if not chunk:
                return
            got.extend(chunk)
            time.sleep(0.02)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    try:
        _signal_after(p, 1.0, signal.SIGINT, 60)
    finally:
        reader.join(timeout=60)
    err = p.stderr.read().decode() if p.stderr is not None else ""
    assert p.returncode == 20, err
    assert err.splitlines() == [
        "pyuring-copy: interrupted: stopped cleanly, no partial file left (exit 20)"]
    lines = got.decode().splitlines()
    assert lines[-1].startswith("sent ") and len(lines) > 100
    _whole_files_only(tmp_path / "dst")
