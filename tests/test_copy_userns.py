"""Setuid and setgid files are never published with the wrong owner or bits.

Root in a user namespace of its own (rootless containers, unprivileged LXC):
there euid is 0 and the ids are mapped, but CAP_FSETID counts only in the
initial namespace: a WRITE clears the setuid bit of the file it writes (the
kernel's capable(), not ns_capable()).  The copy must then set setuid/setgid
after the data, as it does for a non-root user -- not rely on it surviving.
And where the chown of a new setuid file fails, the file must not get its
name as the copying user's with the bits on.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyuring.copy import api
from pyuring.executor import make_executor

from .conftest import requires_root
from .test_copy_support import (
    BACKENDS,
    HANG_GUARD,
    check_backend,
    cli_env,
    copy_api,
    fix_times,
    write,
)

# Runs argv[1:] in a new user namespace with the id map $USERNS_MAP, as root
# there: the parent writes the maps (a process cannot map a range into its
# own namespace).
_IN_USERNS = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
r, w = os.pipe()
r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        os._exit(77)
    os.write(w, b"x")
    os.read(r2, 1)
    os.setgid(0)
    os.setuid(0)
    os.execvp(sys.argv[1], sys.argv[1:])
os.read(r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(os.environ["USERNS_MAP"] + "\n")
os.write(w2, b"x")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@requires_root
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("owner", [0, 1234], ids=["own", "other"])
@pytest.mark.parametrize("idmap", ["0 0 65536", "0 0 4294967295"], ids=["part", "whole"])
def test_setuid_survives_a_copy_by_namespace_root(tmp_path: Path, backend: str,
                                                  owner: int, idmap: str) -> None:
    """("whole": a child namespace whose uid_map looks like the initial one's.)"""
    check_backend(backend)
    src = tmp_path / "src"
    src.mkdir()
    for name, mode in (("suid", 0o4755), ("sgid", 0o2750), ("both", 0o6711)):
        write(src / name, b"#!/bin/true\n" * 3, mode=mode)
        os.chown(src / name, owner, owner + 1)
        os.chmod(src / name, mode)  # (the chown cleared them)
    fix_times(src)
    os.chmod(tmp_path, 0o755)
    argv = [sys.executable, "-c", _IN_USERNS, sys.executable, "-m", "pyuring.copy", "-a",
            "--backend", backend, f"{src}/", str(tmp_path / "dst")]
    r = subprocess.run(argv, env=cli_env(USERNS_MAP=idmap), capture_output=True, text=True,
                       timeout=HANG_GUARD)
    if r.returncode == 77:
        pytest.skip("no user namespaces here")
    assert r.returncode == 0, r.stderr
    for name in ("suid", "sgid", "both"):
        s, d = os.stat(src / name), os.stat(tmp_path / "dst" / name)
        assert (d.st_mode, d.st_uid, d.st_gid) == (s.st_mode, s.st_uid, s.st_gid), name


@requires_root
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chmod_too", [False, True], ids=["bits-dropped", "not-published"])
@pytest.mark.parametrize("size,data_path", [(0, "auto"), (100, "auto"), (3 << 20, "auto"),
                                            (3 << 20, "ring")],
                         ids=["empty", "small", "large", "large-ring"])
def test_a_failed_chown_of_a_setuid_file(tmp_path: Path, backend: str, chmod_too: bool,
                                         size: int, data_path: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The chown of another user's new setuid copy fails (an idmapped mount, say):
    the error is reported, and the file is published without setuid/setgid
    -- or, when those cannot be taken away either, not at all.  Each data path."""
    check_backend(backend)
    src = tmp_path / "src"
    src.mkdir()
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    write(src / "suid", data, mode=0o4755)
    os.chown(src / "suid", 1234, 1234)
    os.chmod(src / "suid", 0o4755)
    write(src / "plain", b"p", mode=0o644)
    fix_times(src)

    def make(*a: Any, **kw: Any) -> Any:
        ex = make_executor(*a, **kw)
        real_chmod = ex.fchmod

        def fchown(fd: int, uid: int, gid: int) -> None:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

        def fchmod(fd: int, mode: int) -> None:
            if chmod_too:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real_chmod(fd, mode)

        ex.fchown = fchown  # type: ignore[method-assign]
        ex.fchmod = fchmod  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(api, "make_executor", make)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, data_path=data_path)
    assert stats.exit_code == 23 and stats.errors >= 1, msgs
    assert any('"suid"' in m for m in msgs), msgs
    assert (tmp_path / "dst" / "plain").read_bytes() == b"p"
    if chmod_too:
        assert not (tmp_path / "dst" / "suid").exists()
    else:
        st = os.stat(tmp_path / "dst" / "suid")
        assert st.st_mode & 0o7777 == 0o755 and st.st_uid == 0
        assert (tmp_path / "dst" / "suid").read_bytes() == data
    assert sorted(os.listdir(tmp_path / "dst")) == (["plain"] if chmod_too
                                                    else ["plain", "suid"])
