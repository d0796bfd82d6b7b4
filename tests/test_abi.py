"""Every constant, struct layout and syscall number in :mod:`pyuring._abi`,
checked against the kernel's UAPI headers.

A wrong bit in ``_abi`` corrupts memory silently, so nothing there is taken on
trust:

* **Constants.**  Every ``#define`` / enum value of the installed headers
  (``<linux/io_uring.h>``, ``<linux/openat2.h>``, ``<linux/stat.h>``,
  ``<linux/fcntl.h>``, ``<linux/fs.h>``, ``<linux/prctl.h>``,
  ``<linux/seccomp.h>``) that ``_abi`` also defines is compared with it.
  Names newer than the installed header (it is Linux 6.1 on the reference
  machine, the kernel is 6.18) are compared with the upstream text recorded
  below.  glibc-only names (``DT_*``, ``SPLICE_F_MOVE`` ...) are compared
  with glibc's headers.
* **Completeness.**  A name the installed header or the upstream excerpt
  defines and ``_abi`` lacks must be listed in ``OMITTED`` with the reason.
* **Layouts.**  For every ``struct.Struct`` in ``_abi`` and its ``*_FIELDS``
  tuple: the offset, size and signedness of each field and the total size,
  against the installed header and against the upstream struct text.
* **Syscall numbers** against ``<sys/syscall.h>`` of the running arch, and
  both tables against the upstream syscall tables.
* **At run time**, every opcode the kernel's probe reports has a name.

Method: one generated C program (translation units for the installed kernel
headers, for glibc and for the upstream excerpt) compiled once with ``cc``
into pytest's tmp dir prints every value and ``offsetof`` / ``sizeof``.
Without a compiler the constants are read by parsing the header text with
the regex parser below (checked against the compiler whenever both are
available); the layout checks then skip.
"""

from __future__ import annotations

import ast
import functools
import operator
import os
import platform
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

import pytest

from pyuring import _abi

# ===========================================================================
# Upstream text (Linux 6.18) for names newer than the installed headers
# ===========================================================================
#
# Taken from include/uapi/linux/io_uring.h in linuxppc/linux-next-ci at commit
# ee1d7dc3399054247e6146d8ce35bcd5ab8f2bd1 (a linux-next tree newer than 6.18),
# cross-read with Kingxukai/linux@0291023e7330 (a 6.16/6.17-era tree) for the
# zero-copy-rx lines that later moved to <linux/io_uring/zcrx.h>.  Only the
# #define / enum lines pyuring needs, whitespace normalised.  The names that
# came after 6.18 were left out, and that cut was checked against a running
# 6.18 kernel: io_uring_setup() accepts IORING_SETUP_CQE_MIXED (bit 18) but not
# bit 19 (SQE_MIXED); io_uring_register() knows opcode 35 (QUERY) but not 36
# (ZCRX_CTRL); the probe's last_op is 62 (PIPE), so NOP128 / URING_CMD128 are
# out; IORING_TIMEOUT_IMMEDIATE_ARG and SOCKET_URING_OP_GETSOCKNAME are
# rejected; IORING_URING_CMD_MULTISHOT, IORING_SEND_VECTORIZED and every
# IORING_NOP_* flag below are accepted.
UPSTREAM_IO_URING_H = r"""
#define IORING_RW_ATTR_FLAG_PI (1U << 0)
#define IORING_FILE_INDEX_ALLOC (~0U)

enum io_uring_sqe_flags_bit {
    IOSQE_FIXED_FILE_BIT,
    IOSQE_IO_DRAIN_BIT,
    IOSQE_IO_LINK_BIT,
    IOSQE_IO_HARDLINK_BIT,
    IOSQE_ASYNC_BIT,
    IOSQE_BUFFER_SELECT_BIT,
    IOSQE_CQE_SKIP_SUCCESS_BIT,
};
#define IOSQE_FIXED_FILE (1U << IOSQE_FIXED_FILE_BIT)
#define IOSQE_IO_DRAIN (1U << IOSQE_IO_DRAIN_BIT)
#define IOSQE_IO_LINK (1U << IOSQE_IO_LINK_BIT)
#define IOSQE_IO_HARDLINK (1U << IOSQE_IO_HARDLINK_BIT)
#define IOSQE_ASYNC (1U << IOSQE_ASYNC_BIT)
#define IOSQE_BUFFER_SELECT (1U << IOSQE_BUFFER_SELECT_BIT)
#define IOSQE_CQE_SKIP_SUCCESS (1U << IOSQE_CQE_SKIP_SUCCESS_BIT)

#define IORING_SETUP_IOPOLL (1U << 0)
#define IORING_SETUP_SQPOLL (1U << 1)
#define IORING_SETUP_SQ_AFF (1U << 2)
#define IORING_SETUP_CQSIZE (1U << 3)
#define IORING_SETUP_CLAMP (1U << 4)
#define IORING_SETUP_ATTACH_WQ (1U << 5)
#define IORING_SETUP_R_DISABLED (1U << 6)
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#define IORING_SETUP_SQE128 (1U << 10)
#define IORING_SETUP_CQE32 (1U << 11)
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#define IORING_SETUP_NO_MMAP (1U << 14)
#define IORING_SETUP_REGISTERED_FD_ONLY (1U << 15)
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#define IORING_SETUP_HYBRID_IOPOLL (1U << 17)
#define IORING_SETUP_CQE_MIXED (1U << 18)

enum io_uring_op {
    IORING_OP_NOP,
    IORING_OP_READV,
    IORING_OP_WRITEV,
    IORING_OP_FSYNC,
    IORING_OP_READ_FIXED,
    IORING_OP_WRITE_FIXED,
    IORING_OP_POLL_ADD,
    IORING_OP_POLL_REMOVE,
    IORING_OP_SYNC_FILE_RANGE,
    IORING_OP_SENDMSG,
    IORING_OP_RECVMSG,
    IORING_OP_TIMEOUT,
    IORING_OP_TIMEOUT_REMOVE,
    IORING_OP_ACCEPT,
    IORING_OP_ASYNC_CANCEL,
    IORING_OP_LINK_TIMEOUT,
    IORING_OP_CONNECT,
    IORING_OP_FALLOCATE,
    IORING_OP_OPENAT,
    IORING_OP_CLOSE,
    IORING_OP_FILES_UPDATE,
    IORING_OP_STATX,
    IORING_OP_READ,
    IORING_OP_WRITE,
    IORING_OP_FADVISE,
    IORING_OP_MADVISE,
    IORING_OP_SEND,
    IORING_OP_RECV,
    IORING_OP_OPENAT2,
    IORING_OP_EPOLL_CTL,
    IORING_OP_SPLICE,
    IORING_OP_PROVIDE_BUFFERS,
    IORING_OP_REMOVE_BUFFERS,
    IORING_OP_TEE,
    IORING_OP_SHUTDOWN,
    IORING_OP_RENAMEAT,
    IORING_OP_UNLINKAT,
    IORING_OP_MKDIRAT,
    IORING_OP_SYMLINKAT,
    IORING_OP_LINKAT,
    IORING_OP_MSG_RING,
    IORING_OP_FSETXATTR,
    IORING_OP_SETXATTR,
    IORING_OP_FGETXATTR,
    IORING_OP_GETXATTR,
    IORING_OP_SOCKET,
    IORING_OP_URING_CMD,
    IORING_OP_SEND_ZC,
    IORING_OP_SENDMSG_ZC,
    IORING_OP_READ_MULTISHOT,
    IORING_OP_WAITID,
    IORING_OP_FUTEX_WAIT,
    IORING_OP_FUTEX_WAKE,
    IORING_OP_FUTEX_WAITV,
    IORING_OP_FIXED_FD_INSTALL,
    IORING_OP_FTRUNCATE,
    IORING_OP_BIND,
    IORING_OP_LISTEN,
    IORING_OP_RECV_ZC,
    IORING_OP_EPOLL_WAIT,
    IORING_OP_READV_FIXED,
    IORING_OP_WRITEV_FIXED,
    IORING_OP_PIPE,

    /* this goes last, obviously */
    IORING_OP_LAST,
};

#define IORING_URING_CMD_FIXED (1U << 0)
#define IORING_URING_CMD_MULTISHOT (1U << 1)
#define IORING_URING_CMD_MASK (IORING_URING_CMD_FIXED | IORING_URING_CMD_MULTISHOT)

#define IORING_FSYNC_DATASYNC (1U << 0)

#define IORING_TIMEOUT_ABS (1U << 0)
#define IORING_TIMEOUT_UPDATE (1U << 1)
#define IORING_TIMEOUT_BOOTTIME (1U << 2)
#define IORING_TIMEOUT_REALTIME (1U << 3)
#define IORING_LINK_TIMEOUT_UPDATE (1U << 4)
#define IORING_TIMEOUT_ETIME_SUCCESS (1U << 5)
#define IORING_TIMEOUT_MULTISHOT (1U << 6)
#define IORING_TIMEOUT_CLOCK_MASK (IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME)
#define IORING_TIMEOUT_UPDATE_MASK (IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE)

#define SPLICE_F_FD_IN_FIXED (1U << 31) /* the last bit of __u32 */

#define IORING_POLL_ADD_MULTI (1U << 0)
#define IORING_POLL_UPDATE_EVENTS (1U << 1)
#define IORING_POLL_UPDATE_USER_DATA (1U << 2)
#define IORING_POLL_ADD_LEVEL (1U << 3)

#define IORING_ASYNC_CANCEL_ALL (1U << 0)
#define IORING_ASYNC_CANCEL_FD (1U << 1)
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#define IORING_ASYNC_CANCEL_FD_FIXED (1U << 3)
#define IORING_ASYNC_CANCEL_USERDATA (1U << 4)
#define IORING_ASYNC_CANCEL_OP (1U << 5)

#define IORING_RECVSEND_POLL_FIRST (1U << 0)
#define IORING_RECV_MULTISHOT (1U << 1)
#define IORING_RECVSEND_FIXED_BUF (1U << 2)
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#define IORING_RECVSEND_BUNDLE (1U << 4)
#define IORING_SEND_VECTORIZED (1U << 5)

#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)

#define IORING_ACCEPT_MULTISHOT (1U << 0)
#define IORING_ACCEPT_DONTWAIT (1U << 1)
#define IORING_ACCEPT_POLL_FIRST (1U << 2)

enum io_uring_msg_ring_flags {
    IORING_MSG_DATA,
    IORING_MSG_SEND_FD,
};
#define IORING_MSG_RING_CQE_SKIP (1U << 0)
#define IORING_MSG_RING_FLAGS_PASS (1U << 1)

#define IORING_FIXED_FD_NO_CLOEXEC (1U << 0)

#define IORING_NOP_INJECT_RESULT (1U << 0)
#define IORING_NOP_FILE (1U << 1)
#define IORING_NOP_FIXED_FILE (1U << 2)
#define IORING_NOP_FIXED_BUFFER (1U << 3)
#define IORING_NOP_TW (1U << 4)
#define IORING_NOP_CQE32 (1U << 5)

#define IORING_CQE_F_BUFFER (1U << 0)
#define IORING_CQE_F_MORE (1U << 1)
#define IORING_CQE_F_SOCK_NONEMPTY (1U << 2)
#define IORING_CQE_F_NOTIF (1U << 3)
#define IORING_CQE_F_BUF_MORE (1U << 4)
#define IORING_CQE_F_SKIP (1U << 5)
#define IORING_CQE_F_32 (1U << 15)

#define IORING_CQE_BUFFER_SHIFT 16

#define IORING_OFF_SQ_RING 0ULL
#define IORING_OFF_CQ_RING 0x8000000ULL
#define IORING_OFF_SQES 0x10000000ULL
#define IORING_OFF_PBUF_RING 0x80000000ULL
#define IORING_OFF_PBUF_SHIFT 16
#define IORING_OFF_MMAP_MASK 0xf8000000ULL

#define IORING_SQ_NEED_WAKEUP (1U << 0)
#define IORING_SQ_CQ_OVERFLOW (1U << 1)
#define IORING_SQ_TASKRUN (1U << 2)

#define IORING_CQ_EVENTFD_DISABLED (1U << 0)

#define IORING_ENTER_GETEVENTS (1U << 0)
#define IORING_ENTER_SQ_WAKEUP (1U << 1)
#define IORING_ENTER_SQ_WAIT (1U << 2)
#define IORING_ENTER_EXT_ARG (1U << 3)
#define IORING_ENTER_REGISTERED_RING (1U << 4)
#define IORING_ENTER_ABS_TIMER (1U << 5)
#define IORING_ENTER_EXT_ARG_REG (1U << 6)
#define IORING_ENTER_NO_IOWAIT (1U << 7)

#define IORING_FEAT_SINGLE_MMAP (1U << 0)
#define IORING_FEAT_NODROP (1U << 1)
#define IORING_FEAT_SUBMIT_STABLE (1U << 2)
#define IORING_FEAT_RW_CUR_POS (1U << 3)
#define IORING_FEAT_CUR_PERSONALITY (1U << 4)
#define IORING_FEAT_FAST_POLL (1U << 5)
#define IORING_FEAT_POLL_32BITS (1U << 6)
#define IORING_FEAT_SQPOLL_NONFIXED (1U << 7)
#define IORING_FEAT_EXT_ARG (1U << 8)
#define IORING_FEAT_NATIVE_WORKERS (1U << 9)
#define IORING_FEAT_RSRC_TAGS (1U << 10)
#define IORING_FEAT_CQE_SKIP (1U << 11)
#define IORING_FEAT_LINKED_FILE (1U << 12)
#define IORING_FEAT_REG_REG_RING (1U << 13)
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#define IORING_FEAT_RW_ATTR (1U << 16)
#define IORING_FEAT_NO_IOWAIT (1U << 17)

enum io_uring_register_op {
    IORING_REGISTER_BUFFERS = 0,
    IORING_UNREGISTER_BUFFERS = 1,
    IORING_REGISTER_FILES = 2,
    IORING_UNREGISTER_FILES = 3,
    IORING_REGISTER_EVENTFD = 4,
    IORING_UNREGISTER_EVENTFD = 5,
    IORING_REGISTER_FILES_UPDATE = 6,
    IORING_REGISTER_EVENTFD_ASYNC = 7,
    IORING_REGISTER_PROBE = 8,
    IORING_REGISTER_PERSONALITY = 9,
    IORING_UNREGISTER_PERSONALITY = 10,
    IORING_REGISTER_RESTRICTIONS = 11,
    IORING_REGISTER_ENABLE_RINGS = 12,
    IORING_REGISTER_FILES2 = 13,
    IORING_REGISTER_FILES_UPDATE2 = 14,
    IORING_REGISTER_BUFFERS2 = 15,
    IORING_REGISTER_BUFFERS_UPDATE = 16,
    IORING_REGISTER_IOWQ_AFF = 17,
    IORING_UNREGISTER_IOWQ_AFF = 18,
    IORING_REGISTER_IOWQ_MAX_WORKERS = 19,
    IORING_REGISTER_RING_FDS = 20,
    IORING_UNREGISTER_RING_FDS = 21,
    IORING_REGISTER_PBUF_RING = 22,
    IORING_UNREGISTER_PBUF_RING = 23,
    IORING_REGISTER_SYNC_CANCEL = 24,
    IORING_REGISTER_FILE_ALLOC_RANGE = 25,
    IORING_REGISTER_PBUF_STATUS = 26,
    IORING_REGISTER_NAPI = 27,
    IORING_UNREGISTER_NAPI = 28,
    IORING_REGISTER_CLOCK = 29,
    IORING_REGISTER_CLONE_BUFFERS = 30,
    IORING_REGISTER_SEND_MSG_RING = 31,
    IORING_REGISTER_ZCRX_IFQ = 32,
    IORING_REGISTER_RESIZE_RINGS = 33,
    IORING_REGISTER_MEM_REGION = 34,
    IORING_REGISTER_QUERY = 35,

    /* this goes last */
    IORING_REGISTER_LAST,

    /* flag added to the opcode to use a registered ring fd */
    IORING_REGISTER_USE_REGISTERED_RING = 1U << 31
};

enum io_wq_type {
    IO_WQ_BOUND,
    IO_WQ_UNBOUND,
};

enum {
    IORING_MEM_REGION_TYPE_USER = 1,
};
enum {
    IORING_MEM_REGION_REG_WAIT_ARG = 1,
};

#define IORING_RSRC_REGISTER_SPARSE (1U << 0)
#define IORING_REGISTER_FILES_SKIP (-2)
#define IO_URING_OP_SUPPORTED (1U << 0)

enum {
    IORING_REGISTER_SRC_REGISTERED = (1U << 0),
    IORING_REGISTER_DST_REPLACE = (1U << 1),
};

enum io_uring_register_pbuf_ring_flags {
    IOU_PBUF_RING_MMAP = 1,
    IOU_PBUF_RING_INC = 2,
};

enum io_uring_napi_op {
    IO_URING_NAPI_REGISTER_OP = 0,
    IO_URING_NAPI_STATIC_ADD_ID = 1,
    IO_URING_NAPI_STATIC_DEL_ID = 2
};
enum io_uring_napi_tracking_strategy {
    IO_URING_NAPI_TRACKING_DYNAMIC = 0,
    IO_URING_NAPI_TRACKING_STATIC = 1,
    IO_URING_NAPI_TRACKING_INACTIVE = 255
};

enum io_uring_register_restriction_op {
    IORING_RESTRICTION_REGISTER_OP = 0,
    IORING_RESTRICTION_SQE_OP = 1,
    IORING_RESTRICTION_SQE_FLAGS_ALLOWED = 2,
    IORING_RESTRICTION_SQE_FLAGS_REQUIRED = 3,
    IORING_RESTRICTION_LAST
};

enum {
    IORING_REG_WAIT_TS = (1U << 0),
};

enum io_uring_socket_op {
    SOCKET_URING_OP_SIOCINQ = 0,
    SOCKET_URING_OP_SIOCOUTQ,
    SOCKET_URING_OP_GETSOCKOPT,
    SOCKET_URING_OP_SETSOCKOPT,
    SOCKET_URING_OP_TX_TIMESTAMP,
};

#define IORING_TIMESTAMP_HW_SHIFT 16
#define IORING_TIMESTAMP_TYPE_SHIFT (IORING_TIMESTAMP_HW_SHIFT + 1)
#define IORING_CQE_F_TSTAMP_HW ((__u32)1 << IORING_TIMESTAMP_HW_SHIFT)

#define IORING_ZCRX_AREA_SHIFT 48
#define IORING_ZCRX_AREA_MASK (~(((__u64)1 << IORING_ZCRX_AREA_SHIFT) - 1))
enum io_uring_zcrx_area_flags {
    IORING_ZCRX_AREA_DMABUF = 1,
};
"""

# The structs of the same header (same tree), for the layouts whose field
# names changed after the installed header: compiled into their own
# translation unit.  struct __kernel_timespec is from
# include/uapi/linux/time_types.h.
UPSTREAM_IO_URING_STRUCTS = r"""
struct __kernel_timespec {
    __kernel_time64_t tv_sec;
    long long tv_nsec;
};

struct io_uring_sqe {
    __u8 opcode;
    __u8 flags;
    __u16 ioprio;
    __s32 fd;
    union {
        __u64 off;
        __u64 addr2;
        struct {
            __u32 cmd_op;
            __u32 __pad1;
        };
    };
    union {
        __u64 addr;
        __u64 splice_off_in;
        struct {
            __u32 level;
            __u32 optname;
        };
    };
    __u32 len;
    union {
        __u32 rw_flags;
        __u32 fsync_flags;
        __u16 poll_events;
        __u32 poll32_events;
        __u32 sync_range_flags;
        __u32 msg_flags;
        __u32 timeout_flags;
        __u32 accept_flags;
        __u32 cancel_flags;
        __u32 open_flags;
        __u32 statx_flags;
        __u32 fadvise_advice;
        __u32 splice_flags;
        __u32 rename_flags;
        __u32 unlink_flags;
        __u32 hardlink_flags;
        __u32 xattr_flags;
        __u32 msg_ring_flags;
        __u32 uring_cmd_flags;
        __u32 waitid_flags;
        __u32 futex_flags;
        __u32 install_fd_flags;
        __u32 nop_flags;
        __u32 pipe_flags;
    };
    __u64 user_data;
    union {
        __u16 buf_index;
        __u16 buf_group;
    } __attribute__((packed));
    __u16 personality;
    union {
        __s32 splice_fd_in;
        __u32 file_index;
        __u32 zcrx_ifq_idx;
        __u32 optlen;
        struct {
            __u16 addr_len;
            __u16 __pad3[1];
        };
        struct {
            __u8 write_stream;
            __u8 __pad4[3];
        };
    };
    union {
        struct {
            __u64 addr3;
            __u64 __pad2[1];
        };
        struct {
            __u64 attr_ptr;
            __u64 attr_type_mask;
        };
        __u64 optval;
        __u8 cmd[0];
    };
};

struct io_uring_cqe {
    __u64 user_data;
    __s32 res;
    __u32 flags;
    __u64 big_cqe[];
};

struct io_sqring_offsets {
    __u32 head;
    __u32 tail;
    __u32 ring_mask;
    __u32 ring_entries;
    __u32 flags;
    __u32 dropped;
    __u32 array;
    __u32 resv1;
    __u64 user_addr;
};

struct io_cqring_offsets {
    __u32 head;
    __u32 tail;
    __u32 ring_mask;
    __u32 ring_entries;
    __u32 overflow;
    __u32 cqes;
    __u32 flags;
    __u32 resv1;
    __u64 user_addr;
};

struct io_uring_params {
    __u32 sq_entries;
    __u32 cq_entries;
    __u32 flags;
    __u32 sq_thread_cpu;
    __u32 sq_thread_idle;
    __u32 features;
    __u32 wq_fd;
    __u32 resv[3];
    struct io_sqring_offsets sq_off;
    struct io_cqring_offsets cq_off;
};

struct io_uring_files_update {
    __u32 offset;
    __u32 resv;
    __aligned_u64 /* __s32 * */ fds;
};

struct io_uring_rsrc_register {
    __u32 nr;
    __u32 flags;
    __u64 resv2;
    __aligned_u64 data;
    __aligned_u64 tags;
};

struct io_uring_rsrc_update {
    __u32 offset;
    __u32 resv;
    __aligned_u64 data;
};

struct io_uring_rsrc_update2 {
    __u32 offset;
    __u32 resv;
    __aligned_u64 data;
    __aligned_u64 tags;
    __u32 nr;
    __u32 resv2;
};

struct io_uring_probe_op {
    __u8 op;
    __u8 resv;
    __u16 flags;
    __u32 resv2;
};

struct io_uring_probe {
    __u8 last_op;
    __u8 ops_len;
    __u16 resv;
    __u32 resv2[3];
    struct io_uring_probe_op ops[];
};

struct io_uring_restriction {
    __u16 opcode;
    union {
        __u8 register_op;
        __u8 sqe_op;
        __u8 sqe_flags;
    };
    __u8 resv;
    __u32 resv2[3];
};

struct io_uring_buf {
    __u64 addr;
    __u32 len;
    __u16 bid;
    __u16 resv;
};

struct io_uring_buf_ring {
    union {
        struct {
            __u64 resv1;
            __u32 resv2;
            __u16 resv3;
            __u16 tail;
        };
        __DECLARE_FLEX_ARRAY(struct io_uring_buf, bufs);
    };
};

struct io_uring_buf_reg {
    __u64 ring_addr;
    __u32 ring_entries;
    __u16 bgid;
    __u16 flags;
    __u64 resv[3];
};

struct io_uring_getevents_arg {
    __u64 sigmask;
    __u32 sigmask_sz;
    __u32 min_wait_usec;
    __u64 ts;
};

struct io_uring_sync_cancel_reg {
    __u64 addr;
    __s32 fd;
    __u32 flags;
    struct __kernel_timespec timeout;
    __u8 opcode;
    __u8 pad[7];
    __u64 pad2[3];
};

struct io_uring_file_index_range {
    __u32 off;
    __u32 len;
    __u64 resv;
};

struct io_uring_recvmsg_out {
    __u32 namelen;
    __u32 controllen;
    __u32 payloadlen;
    __u32 flags;
};
"""

# arch/x86/entry/syscalls/syscall_64.tbl, the lines for the calls pyuring uses.
# From AlfredoFerreira04/scheduler-linux-6.19.9-env@4402330f4810 (a Linux
# 6.19.9 tree; syscall numbers never change once released).
UPSTREAM_SYSCALL_64_TBL = """
8       common  lseek                   sys_lseek
157     common  prctl                   sys_prctl
190     common  fsetxattr               sys_fsetxattr
193     common  fgetxattr               sys_fgetxattr
196     common  flistxattr              sys_flistxattr
199     common  fremovexattr            sys_fremovexattr
137     common  statfs                  sys_statfs
138     common  fstatfs                 sys_fstatfs
217     common  getdents64              sys_getdents64
259     common  mknodat                 sys_mknodat
260     common  fchownat                sys_fchownat
268     common  fchmodat                sys_fchmodat
280     common  utimensat               sys_utimensat
303     common  name_to_handle_at       sys_name_to_handle_at
304     common  open_by_handle_at       sys_open_by_handle_at
316     common  renameat2               sys_renameat2
317     common  seccomp                 sys_seccomp
326     common  copy_file_range         sys_copy_file_range
332     common  statx                   sys_statx
425     common  io_uring_setup          sys_io_uring_setup
426     common  io_uring_enter          sys_io_uring_enter
427     common  io_uring_register       sys_io_uring_register
436     common  close_range             sys_close_range
437     common  openat2                 sys_openat2
452     common  fchmodat2               sys_fchmodat2
463     common  setxattrat              sys_setxattrat
464     common  getxattrat              sys_getxattrat
465     common  listxattrat             sys_listxattrat
466     common  removexattrat           sys_removexattrat
"""

# scripts/syscall.tbl (the generic table arm64 builds its unistd.h from since
# 6.11; the same numbers as include/uapi/asm-generic/unistd.h), the lines for
# the calls pyuring uses.  From ColinIanKing/linux-next@adb585087030.
UPSTREAM_GENERIC_SYSCALL_TBL = """
7       common  fsetxattr               sys_fsetxattr
10      common  fgetxattr               sys_fgetxattr
13      common  flistxattr              sys_flistxattr
16      common  fremovexattr            sys_fremovexattr
33      common  mknodat                 sys_mknodat
43      64      statfs                  sys_statfs
44      64      fstatfs                 sys_fstatfs
53      common  fchmodat                sys_fchmodat
54      common  fchownat                sys_fchownat
61      common  getdents64              sys_getdents64
62      64      lseek                   sys_lseek
88      64      utimensat               sys_utimensat
167     common  prctl                   sys_prctl
264     common  name_to_handle_at       sys_name_to_handle_at
265     common  open_by_handle_at       sys_open_by_handle_at   compat_sys_open_by_handle_at
276     common  renameat2               sys_renameat2
277     common  seccomp                 sys_seccomp
285     common  copy_file_range         sys_copy_file_range
291     common  statx                   sys_statx
425     common  io_uring_setup          sys_io_uring_setup
426     common  io_uring_enter          sys_io_uring_enter
427     common  io_uring_register       sys_io_uring_register
436     common  close_range             sys_close_range
437     common  openat2                 sys_openat2
452     common  fchmodat2               sys_fchmodat2
463     common  setxattrat              sys_setxattrat
464     common  getxattrat              sys_getxattrat
465     common  listxattrat             sys_listxattrat
466     common  removexattrat           sys_removexattrat
"""
# coreutils src/stat.c, human_fstype(): the lines for the file systems it marks
# remote that no UAPI header defines.  From coreutils/coreutils (master, 2025).
COREUTILS_STAT_C_REMOTE = """
    case S_MAGIC_ACFS: /* 0x61636673 remote */
    case S_MAGIC_FHGFS: /* 0x19830326 remote */
    case S_MAGIC_GFS: /* 0x01161970 remote */
    case S_MAGIC_GPFS: /* 0x47504653 remote */
    case S_MAGIC_IBRIX: /* 0x013111A8 remote */
    case S_MAGIC_LUSTRE: /* 0x0BD00BD0 remote */
    case S_MAGIC_PANFS: /* 0xAAD7AAEA remote */
    case S_MAGIC_PRL_FS: /* 0x7C7C6673 remote */
    case S_MAGIC_SNFS: /* 0xBEEFDEAD remote */
    case S_MAGIC_VBOXSF: /* 0x786F4256 remote */
    case S_MAGIC_VMHGFS: /* 0xBACBACBC remote */
"""


def test_out_of_tree_remote_fs_magics_match_coreutils() -> None:
    listed = {m.group(1): int(m.group(2), 16) for m in re.finditer(
        r"case S_MAGIC_(\w+): /\* (0x[0-9A-Fa-f]+) remote \*/", COREUTILS_STAT_C_REMOTE)}
    assert listed == _abi.REMOTE_FS_MAGICS_ELSEWHERE
    assert set(listed.values()) <= _abi.REMOTE_FS_MAGICS


UPSTREAM_SYSCALL_TABLES = {
    "x86_64": UPSTREAM_SYSCALL_64_TBL,
    "aarch64": UPSTREAM_GENERIC_SYSCALL_TBL,
}

# ===========================================================================
# What is compared with what
# ===========================================================================

IO_URING_H = "linux/io_uring.h"
GLIBC = "glibc"  # a layout or constant taken from glibc's headers


@dataclass(frozen=True)
class Header:
    """An installed UAPI header; ``complete``: prefixes of the names that
    ``_abi`` must define completely (or list in OMITTED)."""

    path: str
    complete: Tuple[str, ...] = ()


IO_URING_PREFIXES = (
    "IORING_", "IOSQE_", "IO_URING_", "IO_WQ_", "IOU_", "SPLICE_F_", "SOCKET_URING_OP_",
)
HEADERS = (
    Header(IO_URING_H, IO_URING_PREFIXES),
    Header("linux/openat2.h", ("RESOLVE_",)),
    Header("linux/stat.h", ("STATX_",)),
    Header("linux/fcntl.h", ("AT_",)),
    Header("linux/fs.h", ("RENAME_",)),
    Header("linux/time_types.h"),
    Header("linux/prctl.h"),
    Header("linux/seccomp.h"),
    Header("linux/magic.h"),
)

# Names the headers define that _abi deliberately leaves out.
OMITTED: Dict[str, str] = {
    "IORING_OP_LAST": "sentinel: its value grows with every kernel",
    "IORING_REGISTER_LAST": "sentinel: its value grows with every kernel",
    "IORING_RESTRICTION_LAST": "sentinel: its value grows with every kernel",
    "IORING_URING_CMD_MASK": "the uring_cmd flags the header's kernel knows; changes per release",
    "IO_URING_NAPI_REGISTER_OP": "struct io_uring_napi argument values; pyuring does not build one",
    "IO_URING_NAPI_STATIC_ADD_ID": "struct io_uring_napi argument values",
    "IO_URING_NAPI_STATIC_DEL_ID": "struct io_uring_napi argument values",
    "IO_URING_NAPI_TRACKING_DYNAMIC": "struct io_uring_napi argument values",
    "IO_URING_NAPI_TRACKING_STATIC": "struct io_uring_napi argument values",
    "IO_URING_NAPI_TRACKING_INACTIVE": "struct io_uring_napi argument values",
    "IORING_ZCRX_AREA_SHIFT": "zero-copy receive area tokens; pyuring does not set up zcrx areas",
    "IORING_ZCRX_AREA_MASK": "zero-copy receive area tokens",
    "IORING_ZCRX_AREA_DMABUF": "zero-copy receive area flags",
    "STATX_ALL": "deprecated in <linux/stat.h> itself; request the STATX_* bits needed",
    "STATX__RESERVED": "reserved for future struct statx expansion",
}

# glibc-only names (no UAPI header defines them), checked against glibc.
GLIBC_CONSTANTS = tuple(
    name for name in vars(_abi)
    if name.startswith("DT_")
    or name in ("SPLICE_F_MOVE", "SPLICE_F_NONBLOCK", "SPLICE_F_MORE", "MAX_HANDLE_SZ")
)

# Not kernel ABI at all; checked by value in test_non_header_constants.
NON_HEADER_CONSTANTS = {
    "USER_DATA_RESERVED": "liburing's LIBURING_UDATA_TIMEOUT convention, (__u64)-1",
}


@dataclass(frozen=True)
class Expr:
    """A layout-derived constant: a C expression over ``header`` (``GLIBC``
    for glibc); ``upstream``: also evaluated over the upstream structs."""

    c: str
    header: str
    upstream: bool = False


EXPRESSIONS = {
    "SQE_SIZE": Expr("sizeof(struct io_uring_sqe)", IO_URING_H, True),
    "CQE_SIZE": Expr("sizeof(struct io_uring_cqe)", IO_URING_H, True),
    "PARAMS_SIZE": Expr("sizeof(struct io_uring_params)", IO_URING_H, True),
    "PARAMS_SQ_OFF": Expr("offsetof(struct io_uring_params, sq_off)", IO_URING_H, True),
    "PARAMS_CQ_OFF": Expr("offsetof(struct io_uring_params, cq_off)", IO_URING_H, True),
    "BUF_RING_TAIL_OFFSET": Expr("offsetof(struct io_uring_buf_ring, tail)", IO_URING_H, True),
    "STATX_STRUCT_SIZE": Expr("sizeof(struct statx)", "linux/stat.h"),
    "DIRENT64_NAME_OFFSET": Expr("offsetof(struct dirent64, d_name)", GLIBC),
    "STATFS_SIZE": Expr("sizeof(struct statfs)", GLIBC),
}


@dataclass(frozen=True)
class Layout:
    """``_abi.<attr>`` (a struct.Struct, with ``<attr>_FIELDS``) is
    ``struct <c_struct>`` of ``header``.

    ``renamed`` maps an upstream field name to its name in older headers
    (reserved fields that were given a meaning later); ``whole``: compare
    the total size too (not for a header-only prefix such as dirent64);
    ``size_name``: the _abi constant that holds the size, if any.
    """

    attr: str
    c_struct: str
    header: str
    upstream: bool = False
    whole: bool = True
    renamed: Mapping[str, str] = field(default_factory=dict)
    size_name: Optional[str] = None


LAYOUTS = (
    Layout("SQE", "io_uring_sqe", IO_URING_H, True, size_name="SQE_SIZE"),
    Layout("CQE", "io_uring_cqe", IO_URING_H, True, size_name="CQE_SIZE"),
    Layout("SQRING_OFFSETS", "io_sqring_offsets", IO_URING_H, True,
           renamed={"user_addr": "resv2"}),
    Layout("CQRING_OFFSETS", "io_cqring_offsets", IO_URING_H, True,
           renamed={"user_addr": "resv2"}),
    Layout("PARAMS", "io_uring_params", IO_URING_H, True,
           renamed={"sq_off.user_addr": "sq_off.resv2", "cq_off.user_addr": "cq_off.resv2"},
           size_name="PARAMS_SIZE"),
    Layout("PROBE", "io_uring_probe", IO_URING_H, True),
    Layout("PROBE_OP", "io_uring_probe_op", IO_URING_H, True),
    Layout("GETEVENTS_ARG", "io_uring_getevents_arg", IO_URING_H, True,
           renamed={"min_wait_usec": "pad"}),
    Layout("RSRC_REGISTER", "io_uring_rsrc_register", IO_URING_H, True),
    Layout("RSRC_UPDATE", "io_uring_rsrc_update", IO_URING_H, True),
    Layout("RSRC_UPDATE2", "io_uring_rsrc_update2", IO_URING_H, True),
    Layout("FILES_UPDATE", "io_uring_files_update", IO_URING_H, True),
    Layout("FILE_INDEX_RANGE", "io_uring_file_index_range", IO_URING_H, True),
    Layout("BUF", "io_uring_buf", IO_URING_H, True),
    Layout("BUF_REG", "io_uring_buf_reg", IO_URING_H, True, renamed={"flags": "pad"}),
    Layout("SYNC_CANCEL_REG", "io_uring_sync_cancel_reg", IO_URING_H, True,
           renamed={"opcode": "pad"}),
    Layout("RESTRICTION", "io_uring_restriction", IO_URING_H, True),
    Layout("RECVMSG_OUT", "io_uring_recvmsg_out", IO_URING_H, True),
    Layout("TIMESPEC", "__kernel_timespec", "linux/time_types.h", True),
    Layout("OPEN_HOW", "open_how", "linux/openat2.h"),
    Layout("STATX", "statx", "linux/stat.h", size_name="STATX_STRUCT_SIZE"),
    Layout("IOVEC", "iovec", GLIBC),
    Layout("DIRENT64_HEADER", "dirent64", GLIBC, whole=False),
    Layout("STATFS_HEAD", "statfs", GLIBC, whole=False),
    # (a header: f_handle[] follows, handle_bytes long)
    Layout("FILE_HANDLE_HEAD", "file_handle", GLIBC),
)

# Fields whose Python format deliberately differs in signedness from C.
SIGNEDNESS_EXCEPTIONS = {
    ("SQE", "splice_fd_in"): "union with __u32 file_index: packed unsigned so that "
                             "IORING_FILE_INDEX_ALLOC (~0U) fits",
}

ABI: Dict[str, int] = {
    name: value for name, value in vars(_abi).items()
    if name.isupper() and type(value) is int
}

# ===========================================================================
# Reading C headers without a compiler
# ===========================================================================

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)\b(?!\()[ \t]*(.*)$", re.M)
_ENUM = re.compile(r"\benum\b[^{;]*\{(.*?)\}", re.S)
_LITERAL = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)([uUlL]*)\b")
_CAST = re.compile(
    r"\(\s*(__[us](?:8|16|32|64)|unsigned(?:\s+(?:int|long(?:\s+long)?))?|int|long(?:\s+long)?)"
    r"\s*\)(?=\s*[\w(~-])"
)
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")


def strip_c(text: str) -> str:
    """The text without comments and with line continuations joined."""
    return _COMMENT.sub(" ", text).replace("\\\n", " ")


_BINARY: Dict[type, Callable[[int, int], int]] = {
    ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift,
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
}


def _eval_node(node: ast.AST) -> int:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp):
        operand = _eval_node(node.operand)
        if isinstance(node.op, ast.Invert):
            return ~operand
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
    if isinstance(node, ast.BinOp):
        apply = _BINARY.get(type(node.op))
        if apply is not None:
            return apply(_eval_node(node.left), _eval_node(node.right))
    raise ValueError(f"not an integer constant expression: {ast.dump(node)}")


def c_int(expr: str, known: Mapping[str, Optional[int]]) -> Optional[int]:
    """The value of a C integer constant expression, or None if it is not one
    (or uses a name that is not in ``known``).  Unsigned types wrap: ``~0U``
    is 0xffffffff."""
    unsigned_bits = 0

    def cast(m: re.Match[str]) -> str:
        nonlocal unsigned_bits
        kind = m.group(1)
        if kind == "__u64" or (kind.startswith("unsigned") and "long" in kind):
            unsigned_bits = 64
        elif kind.startswith(("__u", "unsigned")):
            unsigned_bits = max(unsigned_bits, 32)
        return " "

    def literal(m: re.Match[str]) -> str:
        nonlocal unsigned_bits
        digits, suffix = m.group(1), m.group(2).upper()
        if "U" in suffix:
            unsigned_bits = max(unsigned_bits, 64 if "L" in suffix else 32)
        octal = len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX"
        return str(int(digits, 8 if octal else 0))

    def name(m: re.Match[str]) -> str:
        value = known.get(m.group(0))
        if value is None:
            raise KeyError(m.group(0))
        return f"({value})"

    try:
        text = _CAST.sub(cast, expr.strip())
        text = _LITERAL.sub(literal, text)
        text = _IDENT.sub(name, text)
        value = _eval_node(ast.parse(text, mode="eval"))
    except (KeyError, ValueError, SyntaxError):
        return None
    if value < 0 and unsigned_bits:
        value &= (1 << unsigned_bits) - 1
    return value


def parse_constants(text: str) -> Dict[str, Optional[int]]:
    """Every ``#define`` with a value and every enumerator in ``text``, in
    order of appearance; None where the value is not an integer constant."""
    text = strip_c(text)
    events: List[Tuple[int, str, str]] = [(m.start(), "define", m.group(0)) for m in
                                          _DEFINE.finditer(text)]
    events += [(m.start(), "enum", m.group(1)) for m in _ENUM.finditer(text)]
    values: Dict[str, Optional[int]] = {}
    for _pos, kind, chunk in sorted(events):
        if kind == "define":
            m = _DEFINE.match(chunk)
            assert m is not None
            if m.group(2).strip():
                values[m.group(1)] = c_int(m.group(2), values)
            continue
        following: Optional[int] = 0
        for item in chunk.split(","):
            item_name, _eq, expr = item.partition("=")
            item_name = item_name.strip()
            if not re.fullmatch(r"[A-Za-z_]\w*", item_name):
                continue
            value = c_int(expr, values) if expr.strip() else following
            values[item_name] = value
            following = None if value is None else value + 1
    return values


def struct_body(text: str, name: str) -> Optional[str]:
    """The text between the braces of ``struct name { ... }`` (comments
    stripped), or None."""
    text = strip_c(text)
    m = re.search(r"\bstruct\s+" + re.escape(name) + r"\s*\{", text)
    if m is None:
        return None
    depth = 0
    for i in range(m.end() - 1, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[m.end():i]
    return None


def declares(text: str, struct_name: str, member: str) -> bool:
    """Whether ``struct struct_name`` in ``text`` has ``member`` (a dotted
    path through nested named structs, e.g. ``sq_off.user_addr``)."""
    head, _dot, rest = member.partition(".")
    body = struct_body(text, struct_name)
    if body is None:
        return False
    if not re.search(r"[\s*]" + re.escape(head) + r"\s*(\[[^\]]*\])?\s*;", body):
        return False
    if not rest:
        return True
    inner = re.search(r"\bstruct\s+(\w+)\s+" + re.escape(head) + r"\s*;", body)
    return inner is not None and declares(text, inner.group(1), rest)


def parse_syscall_table(text: str) -> Dict[str, int]:
    """name -> number from syscall.tbl lines of the 64-bit ABIs."""
    numbers: Dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\d+)\s+(\w+)\s+(\w+)", line)
        if m and m.group(2) in ("common", "64"):
            numbers[m.group(3)] = int(m.group(1))
    return numbers


# ===========================================================================
# The installed headers
# ===========================================================================

INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"))


def find_header(rel: str) -> Optional[Path]:
    for base in INCLUDE_DIRS:
        for candidate in (base / rel, *sorted(base.glob(f"*-linux-*/{rel}"))):
            if candidate.is_file():
                return candidate
    return None


@functools.cache
def installed_text(rel: str) -> Optional[str]:
    path = find_header(rel)
    return None if path is None else path.read_text(errors="replace")


@functools.cache
def installed_constants(header: Header) -> Optional[Dict[str, Optional[int]]]:
    """The header's names that _abi defines or that fall under its
    ``complete`` prefixes, with their parsed values; None if not installed."""
    text = installed_text(header.path)
    if text is None:
        return None
    return {
        name: value for name, value in parse_constants(text).items()
        if name in ABI or (header.complete and name.startswith(header.complete))
    }


@functools.cache
def upstream_constants() -> Dict[str, Optional[int]]:
    return parse_constants(UPSTREAM_IO_URING_H)


def all_installed_text() -> str:
    return "\n".join(filter(None, (installed_text(h.path) for h in HEADERS)))


def installed_member(layout: Layout, name: str) -> Optional[str]:
    """The name of ``_abi`` field ``name`` in the installed header (its old
    name if it was renamed since), or None if the header lacks both."""
    text = all_installed_text()
    if declares(text, layout.c_struct, name):
        return name
    old = layout.renamed.get(name)
    if old is not None and declares(text, layout.c_struct, old):
        return old
    return None


def layout_installed(layout: Layout) -> bool:
    if layout.header == GLIBC:
        return True
    return installed_text(layout.header) is not None and struct_body(
        all_installed_text(), layout.c_struct) is not None


def running_arch() -> str:
    machine = platform.machine().lower()
    return _abi.SYSCALL_ARCH_ALIASES.get(machine, machine)


def installed_syscall_numbers(arch: str) -> Optional[Dict[str, int]]:
    """__NR_* parsed from the installed asm headers of ``arch``."""
    rel = "asm/unistd_64.h" if arch == "x86_64" else "asm-generic/unistd.h"
    text = installed_text(rel)
    if text is None:
        return None
    return {
        name[len("__NR_"):]: value
        for name, value in parse_constants(text).items()
        if name.startswith("__NR_") and value is not None
    }


# ===========================================================================
# The Python side of a layout
# ===========================================================================

_FORMAT_ITEM = re.compile(r"(\d*)([xcbB?hHiIlLqQnNefdspP])")


@dataclass(frozen=True)
class PyField:
    name: str
    offset: int
    size: int
    count: int  # repeat count: > 1 means a C array
    signed: Optional[bool]


def py_fields(layout: Layout) -> List[PyField]:
    """The named items of the layout's format, each with its offset (the
    calcsize of the format before it; ``=`` formats have no implicit
    padding).  Raises AssertionError if the names do not pair up."""
    fmt: struct.Struct = getattr(_abi, layout.attr)
    names: Sequence[str] = getattr(_abi, layout.attr + "_FIELDS")
    text = re.sub(r"\s", "", fmt.format)
    order, body = text[0], text[1:]
    assert order == "=", f"{layout.attr}: format {fmt.format!r} must start with '='"
    items = _FORMAT_ITEM.findall(body)
    assert "".join(c + k for c, k in items) == body, f"{layout.attr}: bad format {body!r}"
    named = [(c, k) for c, k in items if k != "x"]
    assert len(named) == len(names), (
        f"{layout.attr}: the format has {len(named)} named items "
        f"({' '.join(c + k for c, k in named)}), {layout.attr}_FIELDS has {len(names)} "
        f"names ({', '.join(names)})"
    )
    assert len(set(names)) == len(names), f"{layout.attr}_FIELDS repeats a name: {names}"
    fields: List[PyField] = []
    prefix = order
    it = iter(names)
    for count, kind in items:
        if kind != "x":
            fields.append(PyField(
                name=next(it),
                offset=struct.calcsize(prefix),
                size=struct.calcsize(order + count + kind),
                count=int(count or 1),
                signed=True if kind in "bhilqn" else False if kind in "BHILQN?" else None,
            ))
        prefix += count + kind
    return fields


# ===========================================================================
# The C probe: one program, compiled once
# ===========================================================================

C_MACROS = r"""
#include <stddef.h>
#include <stdio.h>
#define SIGNED_OF(x) _Generic((x), signed char: 1, short: 1, int: 1, long: 1, \
                              long long: 1, default: 0)
#define K(src, name) do { if ((name) < 0) \
        printf("K\t" src "\t" #name "\t%lld\n", (long long)(name)); \
    else printf("K\t" src "\t" #name "\t%llu\n", (unsigned long long)(name)); } while (0)
#define F(src, key, T, m) printf("F\t" src "\t%s\t%s\t%s\t%zu\t%zu\t%d\n", #T, key, #m, \
    offsetof(struct T, m), sizeof(((struct T *)0)->m), SIGNED_OF(((struct T *)0)->m))
#define Z(src, T) printf("Z\t" src "\t%s\t%zu\n", #T, sizeof(struct T))
#define E(src, key, expr) printf("E\t" src "\t%s\t%zu\n", key, (size_t)(expr))
"""

UPSTREAM_PRELUDE = r"""
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef int8_t __s8;
typedef int16_t __s16;
typedef int32_t __s32;
typedef int64_t __s64;
typedef long long __kernel_time64_t;
#define __aligned_u64 __u64 __attribute__((aligned(8)))
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) struct { struct { } __empty_ ## NAME; TYPE NAME[]; }
"""


@dataclass
class CResults:
    consts: Dict[Tuple[str, str], int] = field(default_factory=dict)
    # (source, struct, _abi field name) -> (C member name, offset, size, signed)
    fields: Dict[Tuple[str, str, str], Tuple[str, int, int, bool]] = field(
        default_factory=dict)
    sizes: Dict[Tuple[str, str], int] = field(default_factory=dict)
    exprs: Dict[Tuple[str, str], int] = field(default_factory=dict)


def _layout_lines(src: str, layout: Layout, member_of: Mapping[str, Optional[str]]) -> List[str]:
    lines = [f'  Z("{src}", {layout.c_struct});']
    for py_name, c_name in member_of.items():
        if c_name is not None:
            lines.append(f'  F("{src}", "{py_name}", {layout.c_struct}, {c_name});')
    return lines


def installed_source() -> str:
    """Translation unit over the installed kernel headers."""
    lines = [C_MACROS, "#include <sys/syscall.h>"]
    lines += [f"#include <{h.path}>" for h in HEADERS if installed_text(h.path) is not None]
    lines.append("void dump_installed(void) {")
    for header in HEADERS:
        for name, value in sorted((installed_constants(header) or {}).items()):
            if value is not None:
                lines.append(f'  K("installed", {name});')
    for name in sorted({n for table in _abi.SYSCALLS.values() for n in table}):
        lines.append(f'#ifdef SYS_{name}\n  K("syscall", SYS_{name});\n#endif')
    for layout in LAYOUTS:
        if layout.header != GLIBC and layout_installed(layout):
            members = {f.name: installed_member(layout, f.name) for f in py_fields(layout)}
            lines += _layout_lines("installed", layout, members)
    for key, expr in EXPRESSIONS.items():
        if expr.header != GLIBC and installed_text(expr.header) is not None:
            lines.append(f'  E("installed", "{key}", {expr.c});')
    lines.append("}")
    return "\n".join(lines) + "\n"


def glibc_source() -> str:
    """Translation unit over glibc's headers (they clash with <linux/*.h>)."""
    lines = ["#define _GNU_SOURCE", "#include <dirent.h>", "#include <fcntl.h>",
             "#include <sys/uio.h>", "#include <sys/vfs.h>", C_MACROS,
             "void dump_glibc(void) {"]
    for name in GLIBC_CONSTANTS:
        lines.append(f'#ifdef {name}\n  K("glibc", {name});\n#endif')
    for layout in LAYOUTS:
        if layout.header == GLIBC:
            lines += _layout_lines(GLIBC, layout, {f.name: f.name for f in py_fields(layout)})
    for key, expr in EXPRESSIONS.items():
        if expr.header == GLIBC:
            lines.append(f'  E("glibc", "{key}", {expr.c});')
    lines.append("}")
    return "\n".join(lines) + "\n"


def upstream_source() -> str:
    """Translation unit over the upstream excerpt; holds main()."""
    lines = [UPSTREAM_PRELUDE, C_MACROS, UPSTREAM_IO_URING_H, UPSTREAM_IO_URING_STRUCTS,
             "void dump_upstream(void) {"]
    for name, value in upstream_constants().items():
        if value is not None:
            lines.append(f'  K("upstream", {name});')
    for layout in LAYOUTS:
        if layout.upstream:
            members = {
                f.name: f.name if declares(UPSTREAM_IO_URING_STRUCTS, layout.c_struct, f.name)
                else None
                for f in py_fields(layout)
            }
            lines += _layout_lines("upstream", layout, members)
    for key, expr in EXPRESSIONS.items():
        if expr.upstream:
            lines.append(f'  E("upstream", "{key}", {expr.c});')
    lines += [
        "}",
        "void dump_installed(void);",
        "void dump_glibc(void);",
        "int main(void) { dump_installed(); dump_glibc(); dump_upstream(); return 0; }",
    ]
    return "\n".join(lines) + "\n"


def parse_probe_output(out: str) -> CResults:
    results = CResults()
    for line in out.splitlines():
        kind, src, *rest = line.split("\t")
        if kind == "K":
            results.consts[(src, rest[0])] = int(rest[1])
        elif kind == "F":
            c_struct, key, c_name, offset, size, signed = rest
            results.fields[(src, c_struct, key)] = (c_name, int(offset), int(size), signed == "1")
        elif kind == "Z":
            results.sizes[(src, rest[0])] = int(rest[1])
        elif kind == "E":
            results.exprs[(src, rest[0])] = int(rest[1])
    return results


def find_compiler() -> Optional[str]:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        path = shutil.which(candidate) if candidate else None
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def probe_results(tmp_path_factory: pytest.TempPathFactory) -> Optional[CResults]:
    """The C probe's output, or None when there is no C compiler."""
    cc = find_compiler()
    if cc is None:
        return None
    workdir = tmp_path_factory.mktemp("abi_probe")
    sources = {
        "installed.c": installed_source(),
        "glibc.c": glibc_source(),
        "upstream.c": upstream_source(),
    }
    for name, text in sources.items():
        (workdir / name).write_text(text)
    exe = workdir / "abi_probe"
    build = subprocess.run(
        [cc, "-std=gnu11", "-w", "-o", str(exe), *(str(workdir / n) for n in sources)],
        capture_output=True, text=True, check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"the generated ABI probe does not compile with {cc} "
                    f"(sources kept in {workdir}):\n{build.stderr[-5000:]}")
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    return parse_probe_output(run.stdout)


@pytest.fixture
def c_results(probe_results: Optional[CResults]) -> CResults:
    if probe_results is None:
        pytest.skip("no C compiler (cc, gcc or clang): layouts cannot be checked with "
                    "offsetof/sizeof (constants were still checked by parsing the headers)")
    return probe_results


def show(value: Optional[int]) -> str:
    if value is None:
        return "<absent>"
    return f"{value} ({value:#x})" if value > 9 else str(value)


# ===========================================================================
# Python-side consistency
# ===========================================================================


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.attr)
def test_format_and_field_names_pair_up(layout: Layout) -> None:
    fields = py_fields(layout)  # asserts the pairing
    fmt: struct.Struct = getattr(_abi, layout.attr)
    if layout.size_name is not None:
        declared = getattr(_abi, layout.size_name)
        assert declared == fmt.size, (
            f"{layout.size_name}: _abi={declared}, {layout.attr}.size={fmt.size}")
    ends = [f.offset + f.size for f in fields]
    assert ends == sorted(ends) and ends[-1] <= fmt.size, f"{layout.attr}: fields overlap"


def test_derived_offsets_agree_with_formats() -> None:
    by_name = {lay.attr: {f.name: f for f in py_fields(lay)} for lay in LAYOUTS}
    statx = by_name["STATX"]
    checks = {
        "PARAMS_SQ_OFF": (_abi.PARAMS_SQ_OFF, by_name["PARAMS"]["sq_off.head"].offset),
        "PARAMS_CQ_OFF": (_abi.PARAMS_CQ_OFF, by_name["PARAMS"]["cq_off.head"].offset),
        "PARAMS_CQ_OFF - PARAMS_SQ_OFF": (
            _abi.PARAMS_CQ_OFF - _abi.PARAMS_SQ_OFF, _abi.SQRING_OFFSETS.size),
        "BUF_RING_TAIL_OFFSET": (_abi.BUF_RING_TAIL_OFFSET, by_name["BUF"]["resv"].offset),
        "DIRENT64_NAME_OFFSET": (_abi.DIRENT64_NAME_OFFSET, _abi.DIRENT64_HEADER.size),
    }
    for name, offset in _abi.STATX_FIELDS_OFFSETS.items():
        f = statx.get(name) or statx[name + ".tv_sec"]
        checks[f"STATX_FIELDS_OFFSETS[{name!r}]"] = (offset, f.offset)
    wrong = [f"{what}: _abi={a}, from the formats={b}" for what, (a, b) in checks.items() if a != b]
    assert not wrong, "\n".join(wrong)


def test_op_names_cover_every_opcode_up_to_pipe() -> None:
    ops = {name: value for name, value in ABI.items() if name.startswith("IORING_OP_")}
    assert {v: n[len("IORING_OP_"):] for n, v in ops.items()} == _abi.OP_NAMES
    assert sorted(_abi.OP_NAMES) == list(range(len(ops))), "opcode numbers have a gap"
    # The 6.18 probe's last_op is IORING_OP_PIPE; later opcodes stay out until
    # a kernel that has them can be tested.
    assert max(_abi.OP_NAMES) == _abi.IORING_OP_PIPE == 62


def test_non_header_constants() -> None:
    assert _abi.USER_DATA_RESERVED == (1 << 64) - 1


# ===========================================================================
# Constants
# ===========================================================================


def _method(probe: Optional[CResults]) -> str:
    return "compiled" if probe is not None else "parsed"


def test_constants_match_installed_headers(probe_results: Optional[CResults]) -> None:
    installed = [h for h in HEADERS if installed_constants(h) is not None]
    if not installed:
        pytest.skip("no installed UAPI header (<linux/io_uring.h> ...) to compare with")
    wrong: List[str] = []
    compared = 0
    for header in installed:
        consts = installed_constants(header) or {}
        for name in sorted(set(consts) & ABI.keys()):
            if probe_results is not None:
                expected = probe_results.consts.get(("installed", name))
            else:
                expected = consts[name]
            compared += 1
            if expected is None:
                wrong.append(f"{name}: <{header.path}> defines it, but its value could not be "
                             f"read ({_method(probe_results)})")
            elif ABI[name] != expected:
                wrong.append(f"{name}: _abi={show(ABI[name])}, <{header.path}>={show(expected)}")
    assert compared > 0
    assert not wrong, (f"{len(wrong)} of {compared} constants differ from the installed headers "
                       f"({_method(probe_results)}):\n" + "\n".join(wrong))


def test_installed_headers_define_nothing_abi_lacks() -> None:
    if installed_text(IO_URING_H) is None:
        pytest.skip(f"<{IO_URING_H}> is not installed")
    missing: List[str] = []
    for header in HEADERS:
        for name, value in sorted((installed_constants(header) or {}).items()):
            if header.complete and name not in ABI and name not in OMITTED:
                missing.append(f"{name} = {show(value)} (<{header.path}>)")
    assert not missing, ("names the installed headers define that _abi lacks (add them, or "
                         "list them in OMITTED with a reason):\n" + "\n".join(missing))


def test_constants_match_upstream_excerpt(probe_results: Optional[CResults]) -> None:
    wrong: List[str] = []
    parsed = upstream_constants()
    names = sorted(set(parsed) & ABI.keys())
    for name in names:
        if probe_results is not None:
            expected = probe_results.consts.get(("upstream", name))
        else:
            expected = parsed[name]
        if ABI[name] != expected:
            wrong.append(f"{name}: _abi={show(ABI[name])}, upstream 6.18={show(expected)}")
    assert not wrong, (f"{len(wrong)} of {len(names)} constants differ from the upstream "
                       f"excerpt ({_method(probe_results)}):\n" + "\n".join(wrong))


def test_upstream_defines_nothing_abi_lacks() -> None:
    missing = [
        f"{name} = {show(value)}" for name, value in upstream_constants().items()
        if name.startswith(IO_URING_PREFIXES) and name not in ABI and name not in OMITTED
    ]
    assert not missing, ("names upstream <linux/io_uring.h> (6.18) defines that _abi lacks "
                         "(add them with a '# 6.x' comment, or list them in OMITTED):\n"
                         + "\n".join(missing))


def test_upstream_excerpt_is_the_6_18_cut() -> None:
    up = upstream_constants()
    assert (up["IORING_OP_PIPE"], up["IORING_OP_LAST"]) == (62, 63)
    assert (up["IORING_REGISTER_QUERY"], up["IORING_REGISTER_LAST"]) == (35, 36)
    setup = [v for n, v in up.items() if n.startswith("IORING_SETUP_")]
    assert None not in setup and max(v or 0 for v in setup) == _abi.IORING_SETUP_CQE_MIXED


def test_omitted_names_are_not_in_abi() -> None:
    both = sorted(set(OMITTED) & ABI.keys())
    assert not both, f"listed in OMITTED but defined by _abi: {both}"
    if installed_text(IO_URING_H) is None:
        return
    known: Set[str] = set(upstream_constants())
    for header in HEADERS:
        known |= set(installed_constants(header) or ())
    stale = sorted(set(OMITTED) - known)
    assert not stale, f"listed in OMITTED but defined by no header: {stale}"


def test_parser_agrees_with_compiler(c_results: CResults) -> None:
    """The fallback used without a compiler reads the same values."""
    wrong: List[str] = []
    compared = 0
    sources: List[Tuple[str, str, Mapping[str, Optional[int]]]] = [
        (h.path, "installed", installed_constants(h) or {}) for h in HEADERS
    ]
    sources.append(("upstream excerpt", "upstream", upstream_constants()))
    for label, src, parsed in sources:
        for name, value in parsed.items():
            if value is None:
                continue
            compiled = c_results.consts.get((src, name))
            compared += 1
            if compiled != value:
                wrong.append(f"{name} ({label}): parsed={show(value)}, compiled={show(compiled)}")
    assert compared > 0
    assert not wrong, "\n".join(wrong)


def test_glibc_constants(c_results: CResults) -> None:
    wrong = [
        f"{name}: _abi={show(ABI[name])}, glibc={show(c_results.consts.get((GLIBC, name)))}"
        for name in GLIBC_CONSTANTS if c_results.consts.get((GLIBC, name)) != ABI[name]
    ]
    assert not wrong, "\n".join(wrong)


def test_layout_constants(c_results: CResults) -> None:
    wrong: List[str] = []
    compared = 0
    for name, expr in EXPRESSIONS.items():
        src = GLIBC if expr.header == GLIBC else "installed"
        for where in (src, "upstream") if expr.upstream else (src,):
            got = c_results.exprs.get((where, name))
            if got is None and where == "installed":
                continue  # header not installed
            compared += 1
            if got != ABI[name]:
                wrong.append(f"{name}: _abi={ABI[name]}, {expr.c} ({where})={show(got)}")
    assert compared > 0
    assert not wrong, "\n".join(wrong)


def test_every_abi_constant_is_checked() -> None:
    if installed_text(IO_URING_H) is None:
        pytest.skip(f"<{IO_URING_H}> is not installed: only the upstream excerpt is known")
    covered: Set[str] = set(upstream_constants()) | set(GLIBC_CONSTANTS)
    covered |= set(EXPRESSIONS) | set(NON_HEADER_CONSTANTS)
    for header in HEADERS:
        covered |= set(installed_constants(header) or ())
    unchecked = sorted(set(ABI) - covered)
    assert not unchecked, ("_abi constants no header, excerpt or layout expression "
                           f"checks: {unchecked}")


# ===========================================================================
# Struct layouts
# ===========================================================================


def compare_layout(layout: Layout, src: str, results: CResults,
                   member_of: Mapping[str, Optional[str]], where: str) -> List[str]:
    fmt: struct.Struct = getattr(_abi, layout.attr)
    problems: List[str] = []
    c_size = results.sizes.get((src, layout.c_struct))
    if layout.whole and c_size != fmt.size:
        problems.append(f"{layout.attr}.size: _abi={fmt.size}, "
                        f"sizeof(struct {layout.c_struct}) ({where})={show(c_size)}")
    for f in py_fields(layout):
        c_name = member_of[f.name]
        label = f"{layout.attr}.{f.name}"
        if c_name is None:
            problems.append(f"{label}: struct {layout.c_struct} ({where}) has no such field")
            continue
        got = results.fields.get((src, layout.c_struct, f.name))
        if got is None or got[0] != c_name:
            problems.append(f"{label}: the probe printed nothing for {c_name}")
            continue
        _c_name, offset, size, signed = got
        shown = c_name if c_name == f.name else f"{c_name}, its name there"
        if offset != f.offset:
            problems.append(f"{label}: offset _abi={f.offset}, "
                            f"offsetof({layout.c_struct}, {shown}) ({where})={offset}")
        if c_name != f.name:
            continue  # a reserved field renamed since: its old type may differ
        if size != f.size:
            problems.append(f"{label}: size _abi={f.size}, sizeof ({where})={size}")
        exempt = (layout.attr, f.name) in SIGNEDNESS_EXCEPTIONS
        if f.count == 1 and f.signed is not None and signed != f.signed and not exempt:
            problems.append(f"{label}: _abi packs it {'signed' if f.signed else 'unsigned'}, "
                            f"C ({where}) declares it {'signed' if signed else 'unsigned'}")
    return problems


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.attr)
def test_layout_matches_installed_header(layout: Layout, c_results: CResults) -> None:
    if layout.header == GLIBC:
        members: Dict[str, Optional[str]] = {f.name: f.name for f in py_fields(layout)}
        problems = compare_layout(layout, GLIBC, c_results, members, "glibc")
    else:
        if not layout_installed(layout):
            pytest.skip(f"struct {layout.c_struct} is not in an installed <{layout.header}>")
        members = {f.name: installed_member(layout, f.name) for f in py_fields(layout)}
        problems = compare_layout(layout, "installed", c_results, members,
                                  f"installed <{layout.header}>")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("layout", [lay for lay in LAYOUTS if lay.upstream],
                         ids=lambda lay: lay.attr)
def test_layout_matches_upstream(layout: Layout, c_results: CResults) -> None:
    members = {
        f.name: f.name if declares(UPSTREAM_IO_URING_STRUCTS, layout.c_struct, f.name) else None
        for f in py_fields(layout)
    }
    problems = compare_layout(layout, "upstream", c_results, members, "upstream 6.18")
    assert not problems, "\n".join(problems)


def test_signedness_exceptions_are_needed(c_results: CResults) -> None:
    """Each exception still names a field whose C type differs in sign."""
    layouts = {lay.attr: lay for lay in LAYOUTS}
    for (attr, name), _why in SIGNEDNESS_EXCEPTIONS.items():
        f = next(f for f in py_fields(layouts[attr]) if f.name == name)
        _name, _off, _size, signed = c_results.fields[("upstream", layouts[attr].c_struct, name)]
        assert signed != f.signed, f"{attr}.{name}: SIGNEDNESS_EXCEPTIONS entry is stale"


# ===========================================================================
# Syscall numbers
# ===========================================================================


def test_syscalls_match_installed_headers(probe_results: Optional[CResults]) -> None:
    arch = running_arch()
    table = _abi.SYSCALLS.get(arch)
    if table is None:
        pytest.skip(f"_abi has no syscall table for {arch!r}")
    if probe_results is not None:
        installed = {
            name: value for (src, key), value in probe_results.consts.items()
            if src == "syscall" for name in [key[len("SYS_"):]]
        }
        origin = "<sys/syscall.h> SYS_*"
    else:
        parsed = installed_syscall_numbers(arch)
        if parsed is None:
            pytest.skip(f"neither a C compiler nor the asm unistd header for {arch}")
        installed = parsed
        origin = "asm unistd __NR_*"
    upstream = parse_syscall_table(UPSTREAM_SYSCALL_TABLES[arch])
    wrong: List[str] = []
    for name, number in sorted(table.items()):
        if name in installed:
            if installed[name] != number:
                wrong.append(f"{arch} {name}: _abi={number}, {origin}={installed[name]}")
        elif name not in upstream:
            wrong.append(f"{arch} {name}: not in {origin} nor in the upstream table excerpt")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("arch", sorted(UPSTREAM_SYSCALL_TABLES))
def test_syscalls_match_upstream_tables(arch: str) -> None:
    upstream = parse_syscall_table(UPSTREAM_SYSCALL_TABLES[arch])
    wrong = [
        f"{arch} {name}: _abi={number}, upstream table={upstream.get(name, '<absent>')}"
        for name, number in sorted(_abi.SYSCALLS[arch].items()) if upstream.get(name) != number
    ]
    assert not wrong, "\n".join(wrong)


def test_generic_syscall_table_matches_installed_asm_generic() -> None:
    """aarch64 uses the generic numbers, which any installed
    <asm-generic/unistd.h> carries, whatever the machine."""
    installed = installed_syscall_numbers("aarch64")
    if installed is None:
        pytest.skip("<asm-generic/unistd.h> is not installed")
    wrong = [
        f"aarch64 {name}: _abi={number}, <asm-generic/unistd.h>={installed[name]}"
        for name, number in sorted(_abi.SYSCALLS["aarch64"].items())
        if name in installed and installed[name] != number
    ]
    assert not wrong, "\n".join(wrong)


def test_syscall_tables_name_the_same_calls() -> None:
    names: FrozenSet[str] = frozenset(_abi.SYSCALLS["x86_64"])
    assert all(frozenset(t) == names for t in _abi.SYSCALLS.values())


# ===========================================================================
# The running kernel
# ===========================================================================


def test_every_opcode_the_kernel_reports_has_a_name() -> None:
    from pyuring import probe

    try:
        supported = probe()
    except OSError as exc:
        pytest.skip(f"io_uring is unavailable here: {exc}")
    unnamed = [op for op in range(supported.last_op + 1) if op not in _abi.OP_NAMES]
    assert not unnamed, (f"the kernel's probe reports last_op={supported.last_op}; "
                         f"_abi.OP_NAMES has no name for opcodes {unnamed}")


@pytest.mark.parametrize("short_name", ["SQE_COMMON", "SQE_NOP"])
def test_short_sqe_layouts_write_the_same_bytes_as_the_full_sqe(short_name: str) -> None:
    """The hot-path SQE formats must put every field where SQE has it and zero the rest."""
    import random

    short = getattr(_abi, short_name)
    fields = getattr(_abi, short_name + "_FIELDS")
    full_names = list(_abi.SQE_FIELDS)
    rng = random.Random(7)
    for _ in range(50):
        values = []
        full = [0] * len(full_names)
        for name, code in zip(fields, [c for c in short.format[1:] if c.isalpha() and c != "x"]):
            bits = struct.calcsize("=" + code) * 8
            v = rng.randrange(0, 1 << bits) if code.isupper() else rng.randrange(
                -(1 << (bits - 1)), 1 << (bits - 1))
            values.append(v)
            full[full_names.index(name)] = v
        a, b = bytearray(64), bytearray(64)
        short.pack_into(a, 0, *values)
        _abi.SQE.pack_into(b, 0, *full)
        assert a == b, f"{short_name} disagrees with SQE for values {values}"
