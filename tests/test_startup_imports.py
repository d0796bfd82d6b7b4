"""What keeps start-up short: no typing, re or enum at run time.

In a clean interpreter (a venv, not this sandbox's base site-packages, whose
certifi .pth imports them anyway) typing, re and enum were 7 of a one-file
copy's 36 ms.  The modules import typing only for the type checker; the record
classes come from ``pyuring._records``; the temporary-name check is not a
regular expression.  These tests hold each of those to what it replaced.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyuring import _records
from pyuring.copy.engine import Engine, is_tmp_name

REPO = Path(__file__).resolve().parent.parent
MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts).replace(".__init__", "")
    for p in (REPO / "pyuring").rglob("*.py")
    # (argparse, behind --help and odd command lines, imports re itself)
    if p.name != "helpparser.py")
SLOW = {"typing", "re", "enum"}


def test_every_module_is_checked() -> None:
    assert {"pyuring", "pyuring.copy.__main__", "pyuring.copy.filecopy", "pyuring._records",
            "pyuring.ops"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_typing_re_or_enum(module: str) -> None:
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import {module}; "
            "print(' '.join(sorted(set(sys.modules) & {'typing', 're', 'enum'})))")
    # -S: without site (and its .pth files), which may import them itself
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


def _rich_tree(root: Path) -> Path:
    """Large and small files, a hard link, a symlink, a FIFO, xattrs."""
    import os

    src = root / "src"
    (src / "d").mkdir(parents=True)
    (src / "big").write_bytes(b"b" * (300 << 10))  # (above --small-file-max)
    for i in range(20):
        (src / "d" / f"f{i}").write_bytes(b"x" * i)
    os.link(src / "d" / "f3", src / "hard")
    os.symlink("d/f1", src / "link")
    os.mkfifo(src / "fifo")
    try:
        os.setxattr(src / "d" / "f2", "user.k", b"v")
    except OSError:
        pass  # (a file system without user xattrs: the rest still runs)
    return src


_MODULES_AFTER = ("import sys\n"
                  "from pyuring.copy.cli import main\n"
                  "rc = main(sys.argv[1:])\n"
                  "sys.stdout.flush()\n"
                  "print('MODULES', rc, ' '.join(sorted(sys.modules)))\n")


@pytest.mark.parametrize("args", [
    ["-aHAX", "-v", "--stats"],
    ["-aHAX", "--backend", "sync", "-v"],
    ["-an", "-v"],
    ["-a", "--progress", "-I"],
], ids=lambda a: " ".join(a))
def test_a_copy_imports_none_of_them(tmp_path: Path, args: typing.List[str]) -> None:
    """Whatever the copy does (large files in worker threads, hard links,
    xattrs, the sync backend, a dry run, itemized lines, the summary), it
    never needs typing, re or enum.  (--json does, through the json module;
    --help and odd command lines through argparse.)"""
    src = _rich_tree(tmp_path)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-S", "-c", _MODULES_AFTER, *args, f"{src}/",
                        str(tmp_path / "dst")], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip().splitlines()[-1].split()
    assert line[:2] == ["MODULES", "0"], p.stdout[-2000:]
    assert "pyuring.copy.engine" in line
    assert not SLOW & set(line[2:])
    if args[0] != "-an":  # (a dry run makes nothing)
        assert (tmp_path / "dst" / "big").stat().st_size == 300 << 10


@pytest.mark.skipif(sys.version_info < (3, 10),
                    reason="3.9's runpy imports importlib.abc, which imports typing")
def test_python_m_pyuring_copy_imports_none_of_them(tmp_path: Path) -> None:
    """The command the README gives, as a process: -X importtime lists every
    module the interpreter imported."""
    src = _rich_tree(tmp_path)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-S", "-X", "importtime", "-m", "pyuring.copy",
                        "-aHAX", "--stats", f"{src}/", str(tmp_path / "dst")],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines()
                if line.startswith("import time:")}
    assert "pyuring.copy.filecopy" in imported
    assert not SLOW & imported


@pytest.mark.parametrize("name", ["pyuring.metadata.Metadata", "pyuring.dirfd.DirEntry",
                                  "pyuring._core.Completion", "pyuring._core.RingStats"])
def test_pyurings_records_have_every_annotated_field(name: str) -> None:
    import importlib

    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr)
    fields = tuple(cls.__annotations__)
    assert len(fields) >= 3 and cls._fields == fields
    assert issubclass(cls, tuple) and cls.__qualname__ == attr and cls.__module__ == module
    assert cls.__doc__ and "Alias for field" not in cls.__doc__
    values = tuple(range(len(fields)))
    assert tuple(tuple.__new__(cls, values)) == values


def _record_body(ns: typing.Dict[str, typing.Any]) -> None:
    """One class body, built both ways below."""
    ns["__module__"], ns["__doc__"] = __name__, "A record."
    ns["__annotations__"] = {"a": "int", "b": "bytes", "c": "int", "d": "typing.Any"}
    ns["c"], ns["d"] = 7, None
    ns["twice"] = property(lambda self: 2 * self.a)
    ns["plus"] = lambda self, n: self.a + n
    ns["make"] = classmethod(lambda cls, a: cls(a, b"x"))


# (the type checker sees typing.NamedTuple where pyuring uses _records' one;
# here the run-time class itself is under test)
_Base: typing.Any = _records.NamedTuple
_Ours: typing.Any = types.new_class("_Ours", (_Base,), exec_body=_record_body)
_Theirs: typing.Any = types.new_class("_Theirs", (typing.NamedTuple,), exec_body=_record_body)


def test_records_are_what_typing_namedtuple_builds() -> None:
    ours, theirs = _Ours(1, b"y"), _Theirs(1, b"y")
    assert tuple(ours) == tuple(theirs) == (1, b"y", 7, None)
    assert _Ours._fields == _Theirs._fields
    assert _Ours._field_defaults == _Theirs._field_defaults == {"c": 7, "d": None}
    assert ours.twice == theirs.twice == 2 and ours.plus(4) == theirs.plus(4) == 5
    assert _Ours.make(3) == _Theirs.make(3) == (3, b"x", 7, None)
    assert type(_Ours.make(3)) is _Ours
    assert repr(ours) == repr(theirs).replace("_Theirs", "_Ours")
    assert ours._replace(c=1) == (1, b"y", 1, None) and ours._asdict()["b"] == b"y"
    assert _Ours.__doc__ == "A record." and _Ours.__module__ == __name__
    assert _Ours.__qualname__ == "_Ours" and _Ours.__slots__ == ()
    assert tuple.__new__(_Ours, (5, b"", 0, 1)).a == 5  # (how the hot paths build them)
    with pytest.raises(AttributeError):
        ours.e = 1
    assert pickle.loads(pickle.dumps(ours)) == ours


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default"):
        class _Bad(_Base):  # type: ignore[misc]
            a: int = 1
            b: int


def test_a_body_may_not_replace_what_namedtuple_defines() -> None:
    with pytest.raises(AttributeError, match="_replace"):
        class _Bad(_Base):  # type: ignore[misc]
            a: int

            def _replace(self) -> None:
                pass


def test_a_body_without_annotations_is_refused_not_left_without_fields() -> None:
    """(Python 3.14 keeps a body's annotations lazy, outside its namespace,
    unless the module has ``from __future__ import annotations``.)"""
    def body(ns: typing.Dict[str, typing.Any]) -> None:
        ns["__module__"] = __name__
        ns["__annotate__"] = lambda fmt: {"a": int}

    with pytest.raises(TypeError, match="from __future__ import annotations"):
        types.new_class("_Lazy", (_Base,), exec_body=body)


_PIECES = st.sampled_from([b".", b"-", b"0", b"17", b"a", b"\n", b"\xff", b"\xd9\xa1",
                           b".pyuring-tmp-", b"pyuring-tmp-", b"/"])


@settings(max_examples=3000)
@given(st.lists(_PIECES, max_size=9).map(b"".join))
def test_tmp_name_check_is_the_regular_expression_it_replaced(name: bytes) -> None:
    pattern = re.compile(rb"\..*\.pyuring-tmp-[0-9]+-[0-9]+\Z", re.S)
    assert is_tmp_name(name) == bool(pattern.match(name))


def test_tmp_names_the_engine_makes_are_recognised() -> None:
    eng = Engine.__new__(Engine)
    eng.tmp_jobs = {}
    for base in (b"f", b".hidden", b"x.pyuring-tmp-1-2", b"\xff\n" * 150):
        made = eng.tmp_name(SimpleNamespace(dst_name=base))  # type: ignore[arg-type]
        assert is_tmp_name(made), made
    assert not is_tmp_name(b"f") and not is_tmp_name(b".f.pyuring-tmp-1-")
