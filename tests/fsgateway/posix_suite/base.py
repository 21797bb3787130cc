"""Shared by the POSIX checks (posix_checks.py and posix_suite/check_*.py): assertions, I/O
helpers, libc calls Python lacks, the check registry (`check`, CHECKS) and the context a
check gets (Ctx). Each check_*.py module registers its checks on import, in file order;
posix_checks.py imports them in a fixed order, which is the order checks run in.
Thread-safety: none needed; the checks run one at a time."""

import argparse
import ctypes
import ctypes.util
import errno
import hashlib
import json
import mmap
import os
import platform
import pwd
import random
import shutil
import signal
import stat
import sys
import threading
import time
import traceback

MiB = 1 << 20
CHUNK = MiB
EXIT_SKIP = 77

# fallocate(2) modes (linux/falloc.h)
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
# renameat2(2) flags (linux/fs.h)
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
# d_type values (dirent.h)
DT_UNKNOWN, DT_FIFO, DT_DIR, DT_REG, DT_LNK = 0, 1, 4, 8, 10
ENODATA = getattr(errno, "ENODATA", 61)
# Only EOPNOTSUPP is an acceptable "not supported" from fallocate (ENOTSUP is the same value
# on Linux).
EOPNOTSUPP = errno.EOPNOTSUPP


class CheckFailed(Exception):
    """A check found a wrong value; the message says what was expected and what was seen."""


class CheckSkipped(Exception):
    """A check cannot run here (not root, no second mount); the message says why."""


class SkipAll(Exception):
    """Nothing can run (the directory is not writable)."""


# ----------------------------------------------------------------------------------------
# assertion helpers

def fail(msg):
    raise CheckFailed(msg)


def skip(msg):
    raise CheckSkipped(msg)


def ename(e):
    return errno.errorcode.get(e, str(e)) if isinstance(e, int) else str(e)


def eq(actual, expected, what):
    if actual != expected:
        fail(f"{what}: got {actual!r}, expected {expected!r}")


def true(cond, what):
    if not cond:
        fail(what)


def oct_mode(m):
    return f"0o{m:o}"


def eq_mode(actual, expected, what):
    if actual != expected:
        fail(f"{what}: got {oct_mode(actual)}, expected {oct_mode(expected)}")


def first_difference(a, b):
    """Offset of the first byte where a and b differ within their common length, or None."""
    n = min(len(a), len(b))
    step = 4096
    for base in range(0, n, step):
        if a[base:base + step] != b[base:base + step]:
            return next(i for i in range(base, min(base + step, n)) if a[i] != b[i])
    return None


def eq_bytes(actual, expected, what):
    """Compares two byte strings, reporting the length and the first differing offset."""
    if actual == expected:
        return
    if len(actual) != len(expected):
        first = first_difference(actual, expected)
        extra = f"; first difference at offset {first}" if first is not None else ""
        fail(f"{what}: got {len(actual)} bytes, expected {len(expected)}{extra}")
    i = first_difference(actual, expected)
    j = i
    while j < len(actual) and actual[j] != expected[j]:
        j += 1
    fail(f"{what}: {len(actual)} bytes, differ from offset {i} (first run of differences "
         f"{j - i} bytes; got {bytes(actual[i:i + 8]).hex()}, expected "
         f"{bytes(expected[i:i + 8]).hex()})")


def is_zeros(b):
    return b.count(0) == len(b)


def expect_zeros(b, what):
    if not is_zeros(b):
        i = next(i for i, x in enumerate(b) if x != 0)
        fail(f"{what}: expected {len(b)} zero bytes, found {b[i]:#04x} at relative offset {i}")


def expect_errno(expected, fn, *args, what=None, **kw):
    """Calls fn and requires it to fail with OSError whose errno is in `expected`.

    Returns the errno seen. A successful call is a failure (an fd it returned is closed)."""
    exp = (expected,) if isinstance(expected, int) else tuple(expected)
    names = "/".join(ename(e) for e in exp)
    what = what or f"{fn.__name__}{tuple(a for a in args if not isinstance(a, bytes))}"
    try:
        r = fn(*args, **kw)
    except OSError as e:
        if e.errno in exp:
            return e.errno
        fail(f"{what}: got {ename(e.errno)} ({e.strerror}), expected {names}")
    if fn is os.open and isinstance(r, int):
        os.close(r)
    fail(f"{what}: succeeded (returned {r!r}), expected {names}")


def expect_missing(path, what=None):
    expect_errno(errno.ENOENT, os.lstat, path, what=what or f"lstat({os.path.basename(path)!r}) after it was removed")


# ----------------------------------------------------------------------------------------
# file helpers

def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            fail(f"write returned {n}")
        view = view[n:]


def pwrite_all(fd, data, off):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, off)
        if n <= 0:
            fail(f"pwrite returned {n}")
        view = view[n:]
        off += n


def read_all(fd, bufsize=1 << 20):
    parts = []
    while True:
        b = os.read(fd, bufsize)
        if not b:
            return b"".join(parts)
        parts.append(b)


def pread_all(fd, n, off):
    parts = []
    while n > 0:
        b = os.pread(fd, n, off)
        if not b:
            break
        parts.append(b)
        n -= len(b)
        off += len(b)
    return b"".join(parts)


def write_file(path, data, mode=0o644, flags=0):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flags, mode)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def read_file(path, bufsize=1 << 20):
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_all(fd, bufsize)
    finally:
        os.close(fd)


def touch(path, mode=0o644):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


# ----------------------------------------------------------------------------------------
# libc wrappers for what the os module does not have

_LIBC = None


def libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)
            _LIBC.syscall  # noqa: B018 - probe that the global namespace has libc
        except (OSError, AttributeError):
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return _LIBC


def _raise_errno(*names):
    e = ctypes.get_errno()
    raise OSError(e, os.strerror(e), *names)


_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "riscv64": 276, "i686": 353, "i386": 353}


def renameat2(src, dst, flags):
    lc = libc()
    s, d = os.fsencode(src), os.fsencode(dst)
    fn = getattr(lc, "renameat2", None)
    ctypes.set_errno(0)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
        rc = fn(AT_FDCWD, s, AT_FDCWD, d, flags)
    else:
        nr = _SYS_RENAMEAT2.get(platform.machine())
        if nr is None:
            skip(f"no renameat2 in libc and no known syscall number for {platform.machine()}")
        lc.syscall.restype = ctypes.c_long
        rc = lc.syscall(ctypes.c_long(nr), ctypes.c_int(AT_FDCWD), ctypes.c_char_p(s),
                        ctypes.c_int(AT_FDCWD), ctypes.c_char_p(d), ctypes.c_uint(flags))
    if rc != 0:
        _raise_errno(src, None, dst)


def fallocate(fd, mode, offset, length):
    fn = libc().fallocate64 if hasattr(libc(), "fallocate64") else libc().fallocate
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    ctypes.set_errno(0)
    if fn(fd, mode, offset, length) != 0:
        _raise_errno()


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path, atime, mtime):
    """atime/mtime: (sec, nsec) or UTIME_NOW / UTIME_OMIT."""
    def ts(t):
        return _Timespec(0, t) if isinstance(t, int) else _Timespec(*t)
    times = (_Timespec * 2)(ts(atime), ts(mtime))
    fn = libc().utimensat
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec), ctypes.c_int]
    fn.restype = ctypes.c_int
    ctypes.set_errno(0)
    if fn(AT_FDCWD, os.fsencode(path), times, 0) != 0:
        _raise_errno(path)


class _Dirent64(ctypes.Structure):
    # struct dirent64 (the same layout as struct dirent on 64-bit glibc)
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


def raw_readdir(path):
    """Every entry readdir(3) returns, '.' and '..' included: [(name bytes, d_type, d_ino)]."""
    lc = libc()
    lc.opendir.argtypes = [ctypes.c_char_p]
    lc.opendir.restype = ctypes.c_void_p
    rd = lc.readdir64 if hasattr(lc, "readdir64") else lc.readdir
    rd.argtypes = [ctypes.c_void_p]
    rd.restype = ctypes.POINTER(_Dirent64)
    lc.closedir.argtypes = [ctypes.c_void_p]
    ctypes.set_errno(0)
    d = lc.opendir(os.fsencode(path))
    if not d:
        _raise_errno(path)
    out = []
    try:
        while True:
            ctypes.set_errno(0)
            ent = rd(d)
            if not ent:
                if ctypes.get_errno():
                    _raise_errno(path)
                return out
            e = ent.contents
            out.append((e.d_name, e.d_type, e.d_ino))
    finally:
        lc.closedir(d)


# ----------------------------------------------------------------------------------------
# the check registry

CHECKS = []  # [(name, fn, one-line description)]


def check(name):
    def deco(fn):
        doc = (fn.__doc__ or "").strip().splitlines()
        assert name not in [c[0] for c in CHECKS], name
        CHECKS.append((name, fn, doc[0] if doc else ""))
        return fn
    return deco


class Ctx:
    """What a check gets: its own empty directory `d` and the run's options."""

    def __init__(self, d, nonroot_uid, other_dir, require_fallocate=False):
        self.d = d
        self.nonroot_uid = nonroot_uid
        self.other_dir = other_dir
        # True: a file system known to implement every fallocate mode checked here, so
        # EOPNOTSUPP is a failure (ringstore-fs); False: it is an accepted refusal.
        self.require_fallocate = require_fallocate
        self.notes = []

    def p(self, *parts):
        return os.path.join(self.d, *parts)

    def note(self, msg):
        self.notes.append(msg)


# The clock Linux file systems stamp inode times with (CLOCK_REALTIME_COARSE, id 5 on Linux).
_COARSE_CLOCK = getattr(time, "CLOCK_REALTIME_COARSE", 5)


def settle(after_ns):
    """Waits until a timestamp taken now is later than after_ns on every clock a file system
    may stamp times with; fails if that takes more than 1 s (a clock that does not move)."""
    deadline = time.monotonic() + 1.0
    while time.clock_gettime_ns(_COARSE_CLOCK) <= after_ns or time.time_ns() <= after_ns:
        true(time.monotonic() < deadline, f"the clock did not pass {after_ns} within 1 s")
        os.sched_yield()


# ----------------------------------------------------------------------------------------
# xattr helpers (the xattr and permission checks)

def setxattr_first(path, name, value):
    try:
        os.setxattr(path, name, value)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            fail(f"user xattrs not supported (setxattr gave {ename(e.errno)})")
        raise


def user_xattrs(path):
    return sorted(n for n in os.listxattr(path) if n.startswith("user."))
