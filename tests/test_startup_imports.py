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
    if p.name not in ("helpparser.py", "__main__.py"))


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_typing_re_or_enum(module: str) -> None:
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import {module}; "
            "print(' '.join(sorted(set(sys.modules) & {'typing', 're', 'enum'})))")
    # -S: without site (and its .pth files), which may import them itself
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


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


_PIECES = st.sampled_from([b".", b"-", b"0", b"17", b"a", b"\n", b"\xff", b"\xd9\xa1",
                           b".pyuring-tmp-", b"pyuring-tmp-", b"/"])


@settings(max_examples=3000)
@given(st.lists(_PIECES, max_size=9).map(b"".join))
def test_tmp_name_check_is_the_regular_expression_it_replaced(name: bytes) -> None:
    pattern = re.compile(rb"\..*\.pyuring-tmp-[0-9]+-[0-9]+\Z", re.S)
    assert is_tmp_name(name) == bool(pattern.match(name))


def test_tmp_names_the_engine_makes_are_recognised() -> None:
    eng = Engine.__new__(Engine)
    eng.tmp_counter = 41
    for base in (b"f", b".hidden", b"x.pyuring-tmp-1-2", b"\xff\n" * 150):
        made = eng.tmp_name(base)
        assert is_tmp_name(made), made
    assert not is_tmp_name(b"f") and not is_tmp_name(b".f.pyuring-tmp-1-")
