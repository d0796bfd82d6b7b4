"""``NamedTuple`` class syntax without importing :mod:`typing`.

:mod:`typing` costs a copy ~7 ms of start-up in a clean interpreter (with
:mod:`re` and :mod:`enum`, which it imports): a fifth of a one-file copy's
whole run.  pyuring's modules import it for the type checker only (behind
``TYPE_CHECKING``); the few record classes take their base from here, which
builds exactly what ``typing.NamedTuple`` builds -- a
``collections.namedtuple`` with the class body's methods and properties copied
onto it.  The type checker is shown ``typing.NamedTuple`` itself::

    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from ._records import NamedTuple
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Tuple

# (what the class statement itself puts in a namespace: not copied)
_SKIP = frozenset(("__annotations__", "__module__", "__qualname__", "__slots__",
                   "__orig_bases__", "__annotate__", "__firstlineno__",
                   "__static_attributes__"))
# what namedtuple defines: a class body may not replace it (typing.NamedTuple's rule)
_PROTECTED = frozenset(("__new__", "__init__", "__getnewargs__", "_make", "_replace",
                        "_asdict", "_fields", "_field_defaults", "__match_args__"))


class _RecordMeta(type):
    def __new__(mcls, name: str, bases: Tuple[type, ...], ns: Dict[str, Any]) -> type:
        if "__annotations__" not in ns:
            # (Python 3.14 evaluates annotations lazily unless the module has
            # ``from __future__ import annotations``, as every one of ours does)
            raise TypeError(f"{name}: a record's module needs "
                            f"'from __future__ import annotations'")
        fields = list(ns["__annotations__"])
        defaults: list[Any] = []
        for i, field in enumerate(fields):
            if field in ns:
                defaults.append(ns[field])
            elif defaults:
                raise TypeError(f"{name}: field {field!r} without a default follows "
                                f"field {fields[i - 1]!r} with one")
        make: Any = namedtuple  # (a call with computed names: beyond mypy's namedtuple plugin)
        cls: type = make(name, fields, defaults=defaults, module=ns.get("__module__"))
        for key, value in ns.items():
            if key in _PROTECTED:
                raise AttributeError(f"{name}: cannot overwrite NamedTuple attribute {key}")
            if key not in _SKIP and key not in fields:
                setattr(cls, key, value)
        cls.__qualname__ = ns.get("__qualname__", name)
        cls.__annotations__ = dict(ns.get("__annotations__", {}))
        return cls


#: subclass it as ``typing.NamedTuple`` (fields as annotations, defaults last)
NamedTuple = type.__new__(_RecordMeta, "NamedTuple", (), {})
