"""The kernel ABI that pyuring speaks, and nothing else.

Every number and layout below is copied from the Linux UAPI headers
(``<linux/io_uring.h>``, ``<linux/openat2.h>``, ``<linux/stat.h>``,
``<linux/fcntl.h>``, ``<linux/time_types.h>``) and checked against the
installed headers by ``tests/test_abi.py``.  Names newer than the installed
header (it is older than the running kernel) are checked against the upstream
header text recorded in that test and, at run time, by ``probe()``.

Nothing here runs: no syscalls, no ctypes loading.  Importing this module
works on any platform.

Struct layouts are ``struct.Struct`` formats with ``=`` (native byte order,
standard sizes, no implicit padding): every pad byte the kernel has is spelled
out, so the same format is right on x86-64 and aarch64.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict

# --------------------------------------------------------------------------
# System call numbers.  x86-64 has its own table; aarch64 uses the generic
# table (include/uapi/asm-generic/unistd.h).  io_uring and everything newer
# than 5.1 share numbers across architectures.
# --------------------------------------------------------------------------

SYSCALLS: Dict[str, Dict[str, int]] = {
    "x86_64": {
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "openat2": 437,
        "close_range": 436,
        "statx": 332,
        "getdents64": 217,
        "statfs": 137,
        "fstatfs": 138,
        "renameat2": 316,
        "copy_file_range": 326,
        "utimensat": 280,
        "fchmodat": 268,
        "fchmodat2": 452,
        "fchownat": 260,
        "mknodat": 259,
        "fsetxattr": 190,
        "fgetxattr": 193,
        "flistxattr": 196,
        "fremovexattr": 199,
        "setxattrat": 463,
        "getxattrat": 464,
        "listxattrat": 465,
        "removexattrat": 466,
        "seccomp": 317,
        "prctl": 157,
        "lseek": 8,
        "name_to_handle_at": 303,
        "open_by_handle_at": 304,
    },
    "aarch64": {
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "openat2": 437,
        "close_range": 436,
        "statx": 291,
        "getdents64": 61,
        "statfs": 43,
        "fstatfs": 44,
        "renameat2": 276,
        "copy_file_range": 285,
        "utimensat": 88,
        "fchmodat": 53,
        "fchmodat2": 452,
        "fchownat": 54,
        "mknodat": 33,
        "fsetxattr": 7,
        "fgetxattr": 10,
        "flistxattr": 13,
        "fremovexattr": 16,
        "setxattrat": 463,
        "getxattrat": 464,
        "listxattrat": 465,
        "removexattrat": 466,
        "seccomp": 277,
        "prctl": 167,
        "lseek": 62,
        "name_to_handle_at": 264,
        "open_by_handle_at": 265,
    },
}
# Machine names that mean the same table.
SYSCALL_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}

# --------------------------------------------------------------------------
# io_uring_setup(2) flags
# --------------------------------------------------------------------------
IORING_SETUP_IOPOLL = 1 << 0
IORING_SETUP_SQPOLL = 1 << 1
IORING_SETUP_SQ_AFF = 1 << 2
IORING_SETUP_CQSIZE = 1 << 3
IORING_SETUP_CLAMP = 1 << 4
IORING_SETUP_ATTACH_WQ = 1 << 5
IORING_SETUP_R_DISABLED = 1 << 6
IORING_SETUP_SUBMIT_ALL = 1 << 7
IORING_SETUP_COOP_TASKRUN = 1 << 8
IORING_SETUP_TASKRUN_FLAG = 1 << 9
IORING_SETUP_SQE128 = 1 << 10
IORING_SETUP_CQE32 = 1 << 11
IORING_SETUP_SINGLE_ISSUER = 1 << 12
IORING_SETUP_DEFER_TASKRUN = 1 << 13
IORING_SETUP_NO_MMAP = 1 << 14  # 6.5
IORING_SETUP_REGISTERED_FD_ONLY = 1 << 15  # 6.5
IORING_SETUP_NO_SQARRAY = 1 << 16  # 6.6
IORING_SETUP_HYBRID_IOPOLL = 1 << 17  # 6.13
IORING_SETUP_CQE_MIXED = 1 << 18  # 6.18

# --------------------------------------------------------------------------
# Opcodes (enum io_uring_op)
# --------------------------------------------------------------------------
IORING_OP_NOP = 0
IORING_OP_READV = 1
IORING_OP_WRITEV = 2
IORING_OP_FSYNC = 3
IORING_OP_READ_FIXED = 4
IORING_OP_WRITE_FIXED = 5
IORING_OP_POLL_ADD = 6
IORING_OP_POLL_REMOVE = 7
IORING_OP_SYNC_FILE_RANGE = 8
IORING_OP_SENDMSG = 9
IORING_OP_RECVMSG = 10
IORING_OP_TIMEOUT = 11
IORING_OP_TIMEOUT_REMOVE = 12
IORING_OP_ACCEPT = 13
IORING_OP_ASYNC_CANCEL = 14
IORING_OP_LINK_TIMEOUT = 15
IORING_OP_CONNECT = 16
IORING_OP_FALLOCATE = 17
IORING_OP_OPENAT = 18
IORING_OP_CLOSE = 19
IORING_OP_FILES_UPDATE = 20
IORING_OP_STATX = 21
IORING_OP_READ = 22
IORING_OP_WRITE = 23
IORING_OP_FADVISE = 24
IORING_OP_MADVISE = 25
IORING_OP_SEND = 26
IORING_OP_RECV = 27
IORING_OP_OPENAT2 = 28
IORING_OP_EPOLL_CTL = 29
IORING_OP_SPLICE = 30
IORING_OP_PROVIDE_BUFFERS = 31
IORING_OP_REMOVE_BUFFERS = 32
IORING_OP_TEE = 33
IORING_OP_SHUTDOWN = 34
IORING_OP_RENAMEAT = 35
IORING_OP_UNLINKAT = 36
IORING_OP_MKDIRAT = 37
IORING_OP_SYMLINKAT = 38
IORING_OP_LINKAT = 39
IORING_OP_MSG_RING = 40
IORING_OP_FSETXATTR = 41
IORING_OP_SETXATTR = 42
IORING_OP_FGETXATTR = 43
IORING_OP_GETXATTR = 44
IORING_OP_SOCKET = 45
IORING_OP_URING_CMD = 46
IORING_OP_SEND_ZC = 47
IORING_OP_SENDMSG_ZC = 48
IORING_OP_READ_MULTISHOT = 49  # 6.7
IORING_OP_WAITID = 50  # 6.7
IORING_OP_FUTEX_WAIT = 51  # 6.7
IORING_OP_FUTEX_WAKE = 52  # 6.7
IORING_OP_FUTEX_WAITV = 53  # 6.7
IORING_OP_FIXED_FD_INSTALL = 54  # 6.8
IORING_OP_FTRUNCATE = 55  # 6.9
IORING_OP_BIND = 56  # 6.11
IORING_OP_LISTEN = 57  # 6.11
IORING_OP_RECV_ZC = 58  # 6.15
IORING_OP_EPOLL_WAIT = 59  # 6.15
IORING_OP_READV_FIXED = 60  # 6.15
IORING_OP_WRITEV_FIXED = 61  # 6.15
IORING_OP_PIPE = 62  # 6.16

#: Opcode number -> name without the IORING_OP_ prefix ("READ", "OPENAT2", ...).
OP_NAMES: Dict[int, str] = {
    value: name[len("IORING_OP_"):]
    for name, value in list(globals().items())
    if name.startswith("IORING_OP_") and isinstance(value, int)
}

# --------------------------------------------------------------------------
# sqe->flags
# --------------------------------------------------------------------------
IOSQE_FIXED_FILE_BIT = 0
IOSQE_IO_DRAIN_BIT = 1
IOSQE_IO_LINK_BIT = 2
IOSQE_IO_HARDLINK_BIT = 3
IOSQE_ASYNC_BIT = 4
IOSQE_BUFFER_SELECT_BIT = 5
IOSQE_CQE_SKIP_SUCCESS_BIT = 6
IOSQE_FIXED_FILE = 1 << IOSQE_FIXED_FILE_BIT
IOSQE_IO_DRAIN = 1 << IOSQE_IO_DRAIN_BIT
IOSQE_IO_LINK = 1 << IOSQE_IO_LINK_BIT
IOSQE_IO_HARDLINK = 1 << IOSQE_IO_HARDLINK_BIT
IOSQE_ASYNC = 1 << IOSQE_ASYNC_BIT
IOSQE_BUFFER_SELECT = 1 << IOSQE_BUFFER_SELECT_BIT
IOSQE_CQE_SKIP_SUCCESS = 1 << IOSQE_CQE_SKIP_SUCCESS_BIT

# sqe->file_index: let the kernel pick a free direct descriptor slot.
IORING_FILE_INDEX_ALLOC = 0xFFFFFFFF

# --------------------------------------------------------------------------
# Per-opcode flags
# --------------------------------------------------------------------------
IORING_URING_CMD_FIXED = 1 << 0
IORING_URING_CMD_MULTISHOT = 1 << 1  # 6.18

# sqe->attr_type_mask (read/write attributes, IORING_FEAT_RW_ATTR)
IORING_RW_ATTR_FLAG_PI = 1 << 0  # 6.14

IORING_FSYNC_DATASYNC = 1 << 0

IORING_TIMEOUT_ABS = 1 << 0
IORING_TIMEOUT_UPDATE = 1 << 1
IORING_TIMEOUT_BOOTTIME = 1 << 2
IORING_TIMEOUT_REALTIME = 1 << 3
IORING_LINK_TIMEOUT_UPDATE = 1 << 4
IORING_TIMEOUT_ETIME_SUCCESS = 1 << 5
IORING_TIMEOUT_MULTISHOT = 1 << 6  # 6.4
IORING_TIMEOUT_CLOCK_MASK = IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME
IORING_TIMEOUT_UPDATE_MASK = IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE

SPLICE_F_FD_IN_FIXED = 1 << 31
# splice(2) flags (<linux/splice.h> is not UAPI; values from fcntl.h of glibc)
SPLICE_F_MOVE = 1
SPLICE_F_NONBLOCK = 2
SPLICE_F_MORE = 4

IORING_POLL_ADD_MULTI = 1 << 0
IORING_POLL_UPDATE_EVENTS = 1 << 1
IORING_POLL_UPDATE_USER_DATA = 1 << 2
IORING_POLL_ADD_LEVEL = 1 << 3

IORING_ASYNC_CANCEL_ALL = 1 << 0
IORING_ASYNC_CANCEL_FD = 1 << 1
IORING_ASYNC_CANCEL_ANY = 1 << 2
IORING_ASYNC_CANCEL_FD_FIXED = 1 << 3
IORING_ASYNC_CANCEL_USERDATA = 1 << 4
IORING_ASYNC_CANCEL_OP = 1 << 5

IORING_RECVSEND_POLL_FIRST = 1 << 0
IORING_RECV_MULTISHOT = 1 << 1
IORING_RECVSEND_FIXED_BUF = 1 << 2
IORING_SEND_ZC_REPORT_USAGE = 1 << 3
IORING_RECVSEND_BUNDLE = 1 << 4  # 6.10
IORING_SEND_VECTORIZED = 1 << 5  # <= 6.17 (introducing release not established)
IORING_NOTIF_USAGE_ZC_COPIED = 1 << 31

IORING_ACCEPT_MULTISHOT = 1 << 0
IORING_ACCEPT_DONTWAIT = 1 << 1  # 6.10
IORING_ACCEPT_POLL_FIRST = 1 << 2  # 6.10

IORING_MSG_DATA = 0
IORING_MSG_SEND_FD = 1
IORING_MSG_RING_CQE_SKIP = 1 << 0
IORING_MSG_RING_FLAGS_PASS = 1 << 1  # 6.3

IORING_FIXED_FD_NO_CLOEXEC = 1 << 0  # 6.8

IORING_NOP_INJECT_RESULT = 1 << 0  # 6.10
IORING_NOP_FILE = 1 << 1  # 6.13
IORING_NOP_FIXED_FILE = 1 << 2  # 6.13
IORING_NOP_FIXED_BUFFER = 1 << 3  # 6.13
IORING_NOP_TW = 1 << 4  # <= 6.17 (introducing release not established)
IORING_NOP_CQE32 = 1 << 5  # 6.18

# IORING_OP_URING_CMD on a socket: sqe->cmd_op
SOCKET_URING_OP_SIOCINQ = 0  # 6.6
SOCKET_URING_OP_SIOCOUTQ = 1  # 6.6
SOCKET_URING_OP_GETSOCKOPT = 2  # 6.7
SOCKET_URING_OP_SETSOCKOPT = 3  # 6.7
SOCKET_URING_OP_TX_TIMESTAMP = 4  # 6.15

# --------------------------------------------------------------------------
# cqe->flags
# --------------------------------------------------------------------------
IORING_CQE_F_BUFFER = 1 << 0
IORING_CQE_F_MORE = 1 << 1
IORING_CQE_F_SOCK_NONEMPTY = 1 << 2
IORING_CQE_F_NOTIF = 1 << 3
IORING_CQE_F_BUF_MORE = 1 << 4  # 6.12
IORING_CQE_F_SKIP = 1 << 5  # 6.18: filler CQE of an IORING_SETUP_CQE_MIXED ring
IORING_CQE_F_32 = 1 << 15  # 6.18: a 32-byte CQE in an IORING_SETUP_CQE_MIXED ring
IORING_CQE_BUFFER_SHIFT = 16
# SOCKET_URING_OP_TX_TIMESTAMP completions
IORING_TIMESTAMP_HW_SHIFT = 16  # 6.15
IORING_TIMESTAMP_TYPE_SHIFT = IORING_TIMESTAMP_HW_SHIFT + 1  # 6.15
IORING_CQE_F_TSTAMP_HW = 1 << IORING_TIMESTAMP_HW_SHIFT  # 6.15

# --------------------------------------------------------------------------
# mmap offsets
# --------------------------------------------------------------------------
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000
IORING_OFF_PBUF_RING = 0x80000000  # 6.4
IORING_OFF_PBUF_SHIFT = 16
IORING_OFF_MMAP_MASK = 0xF8000000

# sq_ring->flags
IORING_SQ_NEED_WAKEUP = 1 << 0
IORING_SQ_CQ_OVERFLOW = 1 << 1
IORING_SQ_TASKRUN = 1 << 2

# cq_ring->flags
IORING_CQ_EVENTFD_DISABLED = 1 << 0

# --------------------------------------------------------------------------
# io_uring_enter(2) flags
# --------------------------------------------------------------------------
IORING_ENTER_GETEVENTS = 1 << 0
IORING_ENTER_SQ_WAKEUP = 1 << 1
IORING_ENTER_SQ_WAIT = 1 << 2
IORING_ENTER_EXT_ARG = 1 << 3
IORING_ENTER_REGISTERED_RING = 1 << 4
IORING_ENTER_ABS_TIMER = 1 << 5  # 6.12
IORING_ENTER_EXT_ARG_REG = 1 << 6  # 6.13
IORING_ENTER_NO_IOWAIT = 1 << 7  # 6.15

# --------------------------------------------------------------------------
# io_uring_params->features
# --------------------------------------------------------------------------
IORING_FEAT_SINGLE_MMAP = 1 << 0
IORING_FEAT_NODROP = 1 << 1
IORING_FEAT_SUBMIT_STABLE = 1 << 2
IORING_FEAT_RW_CUR_POS = 1 << 3
IORING_FEAT_CUR_PERSONALITY = 1 << 4
IORING_FEAT_FAST_POLL = 1 << 5
IORING_FEAT_POLL_32BITS = 1 << 6
IORING_FEAT_SQPOLL_NONFIXED = 1 << 7
IORING_FEAT_EXT_ARG = 1 << 8
IORING_FEAT_NATIVE_WORKERS = 1 << 9
IORING_FEAT_RSRC_TAGS = 1 << 10
IORING_FEAT_CQE_SKIP = 1 << 11
IORING_FEAT_LINKED_FILE = 1 << 12
IORING_FEAT_REG_REG_RING = 1 << 13  # 6.3
IORING_FEAT_RECVSEND_BUNDLE = 1 << 14  # 6.10
IORING_FEAT_MIN_TIMEOUT = 1 << 15  # 6.12
IORING_FEAT_RW_ATTR = 1 << 16  # 6.14
IORING_FEAT_NO_IOWAIT = 1 << 17  # 6.15

# --------------------------------------------------------------------------
# io_uring_register(2) opcodes
# --------------------------------------------------------------------------
IORING_REGISTER_BUFFERS = 0
IORING_UNREGISTER_BUFFERS = 1
IORING_REGISTER_FILES = 2
IORING_UNREGISTER_FILES = 3
IORING_REGISTER_EVENTFD = 4
IORING_UNREGISTER_EVENTFD = 5
IORING_REGISTER_FILES_UPDATE = 6
IORING_REGISTER_EVENTFD_ASYNC = 7
IORING_REGISTER_PROBE = 8
IORING_REGISTER_PERSONALITY = 9
IORING_UNREGISTER_PERSONALITY = 10
IORING_REGISTER_RESTRICTIONS = 11
IORING_REGISTER_ENABLE_RINGS = 12
IORING_REGISTER_FILES2 = 13
IORING_REGISTER_FILES_UPDATE2 = 14
IORING_REGISTER_BUFFERS2 = 15
IORING_REGISTER_BUFFERS_UPDATE = 16
IORING_REGISTER_IOWQ_AFF = 17
IORING_UNREGISTER_IOWQ_AFF = 18
IORING_REGISTER_IOWQ_MAX_WORKERS = 19
IORING_REGISTER_RING_FDS = 20
IORING_UNREGISTER_RING_FDS = 21
IORING_REGISTER_PBUF_RING = 22
IORING_UNREGISTER_PBUF_RING = 23
IORING_REGISTER_SYNC_CANCEL = 24
IORING_REGISTER_FILE_ALLOC_RANGE = 25
IORING_REGISTER_PBUF_STATUS = 26  # 6.8
IORING_REGISTER_NAPI = 27  # 6.9
IORING_UNREGISTER_NAPI = 28  # 6.9
IORING_REGISTER_CLOCK = 29  # 6.12
IORING_REGISTER_CLONE_BUFFERS = 30  # 6.12
IORING_REGISTER_SEND_MSG_RING = 31  # 6.13
IORING_REGISTER_ZCRX_IFQ = 32  # 6.15
IORING_REGISTER_RESIZE_RINGS = 33  # 6.13
IORING_REGISTER_MEM_REGION = 34  # 6.13
IORING_REGISTER_QUERY = 35  # 6.18
# Flag or-ed into the opcode: the fd argument is a registered ring index.
IORING_REGISTER_USE_REGISTERED_RING = 1 << 31

IO_WQ_BOUND = 0
IO_WQ_UNBOUND = 1

IORING_RSRC_REGISTER_SPARSE = 1 << 0
# struct io_uring_clone_buffers flags (IORING_REGISTER_CLONE_BUFFERS)
IORING_REGISTER_SRC_REGISTERED = 1 << 0  # 6.12
IORING_REGISTER_DST_REPLACE = 1 << 1  # 6.13
# IORING_REGISTER_MEM_REGION: region types and flags, wait-region flags
IORING_MEM_REGION_TYPE_USER = 1  # 6.13
IORING_MEM_REGION_REG_WAIT_ARG = 1  # 6.13
IORING_REG_WAIT_TS = 1 << 0  # 6.13
IORING_REGISTER_FILES_SKIP = -2
IO_URING_OP_SUPPORTED = 1 << 0

IOU_PBUF_RING_MMAP = 1  # 6.4
IOU_PBUF_RING_INC = 2  # 6.12

IORING_RESTRICTION_REGISTER_OP = 0
IORING_RESTRICTION_SQE_OP = 1
IORING_RESTRICTION_SQE_FLAGS_ALLOWED = 2
IORING_RESTRICTION_SQE_FLAGS_REQUIRED = 3

# --------------------------------------------------------------------------
# <linux/openat2.h>: resolve flags for struct open_how
# --------------------------------------------------------------------------
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20

# --------------------------------------------------------------------------
# <linux/fcntl.h> and <linux/stat.h>
# --------------------------------------------------------------------------
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EACCESS = 0x200  # faccessat(); the same bit as AT_REMOVEDIR (unlinkat)
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000  # mask of the AT_STATX_* sync modes
AT_STATX_SYNC_AS_STAT = 0x0000
AT_STATX_FORCE_SYNC = 0x2000
AT_STATX_DONT_SYNC = 0x4000
AT_RECURSIVE = 0x8000  # open_tree(), mount_setattr()
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1
RENAME_WHITEOUT = 1 << 2

STATX_TYPE = 0x00000001
STATX_MODE = 0x00000002
STATX_NLINK = 0x00000004
STATX_UID = 0x00000008
STATX_GID = 0x00000010
STATX_ATIME = 0x00000020
STATX_MTIME = 0x00000040
STATX_CTIME = 0x00000080
STATX_INO = 0x00000100
STATX_SIZE = 0x00000200
STATX_BLOCKS = 0x00000400
STATX_BASIC_STATS = 0x000007FF
STATX_BTIME = 0x00000800
STATX_MNT_ID = 0x00001000
STATX_DIOALIGN = 0x00002000

STATX_ATTR_COMPRESSED = 0x00000004
STATX_ATTR_IMMUTABLE = 0x00000010
STATX_ATTR_APPEND = 0x00000020
STATX_ATTR_NODUMP = 0x00000040
STATX_ATTR_ENCRYPTED = 0x00000800
STATX_ATTR_AUTOMOUNT = 0x00001000
STATX_ATTR_MOUNT_ROOT = 0x00002000
STATX_ATTR_VERITY = 0x00100000
STATX_ATTR_DAX = 0x00200000

# --------------------------------------------------------------------------
# Struct layouts.  Field order is the header's.  Each ``struct.Struct`` is
# paired with a *_FIELDS tuple holding one name per format item, where an
# item is a type code with an optional repeat count:
#
# * ``3I`` is one field, a C array (``__u32 resv[3]``);
# * ``x`` items are pad bytes the kernel reserves; they have no name (pack
#   writes zeros there);
# * a member of a nested struct is named with a dot (``sq_off.head``);
# * a union slot is named after the union's first member in the header.
#
# Names are upstream's (Linux 6.18); tests/test_abi.py maps the few renamed
# reserved fields back to their old names when the installed header is older.
# --------------------------------------------------------------------------

# struct io_uring_sqe (64 bytes).
SQE = struct.Struct("=BBHiQQIIQHHIQQ")
SQE_FIELDS = (
    "opcode", "flags", "ioprio", "fd", "off", "addr", "len", "rw_flags",
    "user_data", "buf_index", "personality",
    # union { __s32 splice_fd_in; __u32 file_index; ... }: packed unsigned so
    # that IORING_FILE_INDEX_ALLOC (~0U) fits.
    "splice_fd_in",
    "addr3", "__pad2",
)
SQE_SIZE = 64

# Shorter layouts of the same 64 bytes for the hot paths: the fields a request
# does not use are pad bytes ("x"), which pack_into writes as zeros -- fewer
# arguments, same SQE.  tests/test_abi.py checks them against SQE field by field.
#   SQE_COMMON: opcode flags fd off addr len op_flags user_data personality file_index
SQE_COMMON = struct.Struct("=BBxxiQQIIQxxHI16x")
SQE_COMMON_FIELDS = ("opcode", "flags", "fd", "off", "addr", "len", "rw_flags", "user_data",
                     "personality", "splice_fd_in")
#   SQE_NOP: flags fd len op_flags user_data personality (opcode 0 is a pad byte)
SQE_NOP = struct.Struct("=xBxxi16xIIQxxH20x")
SQE_NOP_FIELDS = ("flags", "fd", "len", "rw_flags", "user_data", "personality")

# struct io_uring_cqe (16 bytes; 32 with IORING_SETUP_CQE32)
CQE = struct.Struct("=QiI")
CQE_FIELDS = ("user_data", "res", "flags")
CQE_SIZE = 16

# struct io_sqring_offsets / io_cqring_offsets (40 bytes each).  user_addr
# (IORING_SETUP_NO_MMAP, 6.5) was resv2 before.
SQRING_OFFSETS = struct.Struct("=IIIIIIIIQ")
SQRING_OFFSETS_FIELDS = (
    "head", "tail", "ring_mask", "ring_entries", "flags", "dropped", "array", "resv1",
    "user_addr",
)
CQRING_OFFSETS = struct.Struct("=IIIIIIIIQ")
CQRING_OFFSETS_FIELDS = (
    "head", "tail", "ring_mask", "ring_entries", "overflow", "cqes", "flags", "resv1",
    "user_addr",
)

# struct io_uring_params (120 bytes): 10 u32 then the two offset structs.
PARAMS = struct.Struct("=IIIIIII3I" + "IIIIIIIIQ" + "IIIIIIIIQ")
PARAMS_FIELDS = (
    "sq_entries", "cq_entries", "flags", "sq_thread_cpu", "sq_thread_idle",
    "features", "wq_fd", "resv",
    *("sq_off." + name for name in SQRING_OFFSETS_FIELDS),
    *("cq_off." + name for name in CQRING_OFFSETS_FIELDS),
)
PARAMS_SIZE = 120
PARAMS_SQ_OFF = 40
PARAMS_CQ_OFF = 80

# struct io_uring_probe (16 bytes) followed by io_uring_probe_op[] (8 each)
PROBE = struct.Struct("=BBH3I")
PROBE_FIELDS = ("last_op", "ops_len", "resv", "resv2")
PROBE_OP = struct.Struct("=BBHI")
PROBE_OP_FIELDS = ("op", "resv", "flags", "resv2")

# struct io_uring_getevents_arg (24 bytes).  min_wait_usec (6.12) was pad.
GETEVENTS_ARG = struct.Struct("=QIIQ")
GETEVENTS_ARG_FIELDS = ("sigmask", "sigmask_sz", "min_wait_usec", "ts")

# struct io_uring_rsrc_register (32 bytes)
RSRC_REGISTER = struct.Struct("=IIQQQ")
RSRC_REGISTER_FIELDS = ("nr", "flags", "resv2", "data", "tags")

# struct io_uring_rsrc_update (16 bytes)
RSRC_UPDATE = struct.Struct("=IIQ")
RSRC_UPDATE_FIELDS = ("offset", "resv", "data")

# struct io_uring_rsrc_update2 (32 bytes)
RSRC_UPDATE2 = struct.Struct("=IIQQII")
RSRC_UPDATE2_FIELDS = ("offset", "resv", "data", "tags", "nr", "resv2")

# struct io_uring_files_update (16 bytes, deprecated form of rsrc_update)
FILES_UPDATE = struct.Struct("=IIQ")
FILES_UPDATE_FIELDS = ("offset", "resv", "fds")

# struct io_uring_file_index_range (16 bytes)
FILE_INDEX_RANGE = struct.Struct("=IIQ")
FILE_INDEX_RANGE_FIELDS = ("off", "len", "resv")

# struct io_uring_buf (16 bytes); the ring's tail overlays bufs[0].resv at 14.
BUF = struct.Struct("=QIHH")
BUF_FIELDS = ("addr", "len", "bid", "resv")
BUF_RING_TAIL_OFFSET = 14

# struct io_uring_buf_reg (40 bytes).  flags (IOU_PBUF_RING_*) was pad.
BUF_REG = struct.Struct("=QIHH3Q")
BUF_REG_FIELDS = ("ring_addr", "ring_entries", "bgid", "flags", "resv")

# struct io_uring_sync_cancel_reg (64 bytes).  opcode (IORING_ASYNC_CANCEL_OP)
# took the first byte of what was pad[4]; pad[7] and pad2[3] follow.
SYNC_CANCEL_REG = struct.Struct("=QiIqqB7x24x")
SYNC_CANCEL_REG_FIELDS = (
    "addr", "fd", "flags", "timeout.tv_sec", "timeout.tv_nsec", "opcode",
)

# struct io_uring_restriction (16 bytes)
RESTRICTION = struct.Struct("=HBB3I")
RESTRICTION_FIELDS = ("opcode", "register_op", "resv", "resv2")

# struct io_uring_recvmsg_out (16 bytes)
RECVMSG_OUT = struct.Struct("=IIII")
RECVMSG_OUT_FIELDS = ("namelen", "controllen", "payloadlen", "flags")

# struct __kernel_timespec (16 bytes)
TIMESPEC = struct.Struct("=qq")
TIMESPEC_FIELDS = ("tv_sec", "tv_nsec")

# struct open_how (24 bytes)
OPEN_HOW = struct.Struct("=QQQ")
OPEN_HOW_FIELDS = ("flags", "mode", "resolve")

# struct statx (256 bytes).  Timestamps are struct statx_timestamp
# {__s64 tv_sec; __u32 tv_nsec; __s32 __reserved;}.
STATX = struct.Struct(
    "=IIQIIIHH"  # mask blksize attributes nlink uid gid mode __spare0
    "QQQQ"  # ino size blocks attributes_mask
    "qIi" "qIi" "qIi" "qIi"  # atime btime ctime mtime
    "IIII"  # rdev_major rdev_minor dev_major dev_minor
    "QII"  # mnt_id dio_mem_align dio_offset_align
    "96x"  # spare to 256 bytes (subattributes added in 6.x live here)
)
STATX_FIELDS = (
    "stx_mask", "stx_blksize", "stx_attributes", "stx_nlink", "stx_uid", "stx_gid",
    "stx_mode", "__spare0",
    "stx_ino", "stx_size", "stx_blocks", "stx_attributes_mask",
    *(
        f"stx_{ts}.{part}"
        for ts in ("atime", "btime", "ctime", "mtime")
        for part in ("tv_sec", "tv_nsec", "__reserved")
    ),
    "stx_rdev_major", "stx_rdev_minor", "stx_dev_major", "stx_dev_minor",
    "stx_mnt_id", "stx_dio_mem_align", "stx_dio_offset_align",
)
STATX_FIELDS_OFFSETS = {
    "stx_mask": 0, "stx_blksize": 4, "stx_attributes": 8, "stx_nlink": 16,
    "stx_uid": 20, "stx_gid": 24, "stx_mode": 28, "stx_ino": 32, "stx_size": 40,
    "stx_blocks": 48, "stx_attributes_mask": 56, "stx_atime": 64, "stx_btime": 80,
    "stx_ctime": 96, "stx_mtime": 112, "stx_rdev_major": 128, "stx_rdev_minor": 132,
    "stx_dev_major": 136, "stx_dev_minor": 140, "stx_mnt_id": 144,
    "stx_dio_mem_align": 152, "stx_dio_offset_align": 156,
}
# Not STATX_SIZE: that is the stx_size request bit (0x200) above.
STATX_STRUCT_SIZE = 256

# struct iovec (16 bytes on 64-bit)
IOVEC = struct.Struct("=QQ")
IOVEC_FIELDS = ("iov_base", "iov_len")

# linux_dirent64: d_ino u64, d_off s64, d_reclen u16, d_type u8, d_name[]
# (the layout of glibc's struct dirent64 on 64-bit Linux)
DIRENT64_HEADER = struct.Struct("=QqHB")
DIRENT64_HEADER_FIELDS = ("d_ino", "d_off", "d_reclen", "d_type")
DIRENT64_NAME_OFFSET = 19

# struct statfs (glibc <sys/vfs.h>, 64-bit): only f_type is read, the file
# system's magic number
STATFS_HEAD = struct.Struct("=q")
STATFS_HEAD_FIELDS = ("f_type",)
STATFS_SIZE = 120

# struct file_handle (glibc <fcntl.h>, _GNU_SOURCE): a header, then handle_bytes
# bytes of the file system's own identifier (an inode number and its
# generation, for most: a freed inode number handed out again is not the same)
FILE_HANDLE_HEAD = struct.Struct("=Ii")
FILE_HANDLE_HEAD_FIELDS = ("handle_bytes", "handle_type")
MAX_HANDLE_SZ = 128

# File systems where every metadata operation waits on a server, a cluster or
# a daemon (<linux/magic.h>; FUSE includes virtiofs and local FUSE file
# systems): there a copy wants many io-wq workers at once.
AFS_FS_MAGIC = 0x6B414653
AFS_SUPER_MAGIC = 0x5346414F
CEPH_SUPER_MAGIC = 0x00C36400
CIFS_SUPER_MAGIC = 0xFF534D42
CODA_SUPER_MAGIC = 0x73757245
FUSE_SUPER_MAGIC = 0x65735546
NCP_SUPER_MAGIC = 0x564C
NFS_SUPER_MAGIC = 0x6969
OCFS2_SUPER_MAGIC = 0x7461636F
SMB_SUPER_MAGIC = 0x517B
SMB2_SUPER_MAGIC = 0xFE534D42
V9FS_MAGIC = 0x01021997
# Out-of-tree (and GFS2, whose magic no UAPI header has) file systems that
# coreutils' stat.c marks remote, by its S_MAGIC_* names.
REMOTE_FS_MAGICS_ELSEWHERE: Dict[str, int] = {
    "ACFS": 0x61636673,  # Oracle ASM cluster file system
    "FHGFS": 0x19830326,  # BeeGFS
    "GFS": 0x01161970,  # GFS2
    "GPFS": 0x47504653,  # IBM Spectrum Scale
    "IBRIX": 0x013111A8,
    "LUSTRE": 0x0BD00BD0,
    "PANFS": 0xAAD7AAEA,
    "PRL_FS": 0x7C7C6673,  # Parallels shared folders
    "SNFS": 0xBEEFDEAD,  # StorNext
    "VBOXSF": 0x786F4256,  # VirtualBox shared folders
    "VMHGFS": 0xBACBACBC,  # VMware shared folders
}
REMOTE_FS_MAGICS = frozenset((
    AFS_FS_MAGIC, AFS_SUPER_MAGIC, CEPH_SUPER_MAGIC, CIFS_SUPER_MAGIC, CODA_SUPER_MAGIC,
    FUSE_SUPER_MAGIC, NCP_SUPER_MAGIC, NFS_SUPER_MAGIC, OCFS2_SUPER_MAGIC, SMB_SUPER_MAGIC,
    SMB2_SUPER_MAGIC, V9FS_MAGIC, *REMOTE_FS_MAGICS_ELSEWHERE.values(),
))

# d_type values (<dirent.h>)
DT_UNKNOWN = 0
DT_FIFO = 1
DT_CHR = 2
DT_DIR = 4
DT_BLK = 6
DT_REG = 8
DT_LNK = 10
DT_SOCK = 12

# Seccomp / prctl, for the sandbox tests and the CLI's probe.
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

# Largest user_data pyuring hands out; 2**64-1 is reserved (liburing uses it
# internally for timeouts).
USER_DATA_RESERVED = 0xFFFFFFFFFFFFFFFF
