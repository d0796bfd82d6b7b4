"""Names as text for messages and itemized lines."""

from __future__ import annotations


def show(path: bytes) -> str:
    """A name for messages: one line, always encodable.

    As rsync does, control characters and bytes that are not UTF-8 become
    ``\\#ooo`` (octal), so a name cannot break a line or forge another one.
    """
    try:
        text = path.decode("utf-8")
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    out = []
    for ch in path.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\#{o - 0xDC00:03o}")
        elif not ch.isprintable():  # control characters, line separators, ...
            out.extend(f"\\#{b:03o}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)
