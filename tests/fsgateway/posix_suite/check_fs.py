"""POSIX checks: file system level: statvfs, fsync, fallocate, EXDEV, open-unlinked, mmap. Registered on import (posix_suite/base.py)."""

from posix_suite.base import *  # noqa: F401,F403 - the checks' shared vocabulary


# file system level

@check("statvfs")
def _c(c):
    """statvfs/fstatvfs: f_bsize, f_frsize, f_blocks > 0, f_bavail <= f_bfree <= f_blocks, f_namemax >= 255"""
    write_file(c.p("f"), b"x")
    fd = os.open(c.p("f"), os.O_RDONLY)
    try:
        results = [("statvfs", os.statvfs(c.d)), ("fstatvfs", os.fstatvfs(fd))]
    finally:
        os.close(fd)
    for what, s in results:
        true(s.f_bsize > 0, f"{what} f_bsize {s.f_bsize}")
        true(s.f_frsize > 0, f"{what} f_frsize {s.f_frsize}")
        true(s.f_blocks > 0, f"{what} f_blocks {s.f_blocks}")
        true(s.f_bfree <= s.f_blocks, f"{what} f_bfree {s.f_bfree} > f_blocks {s.f_blocks}")
        true(s.f_bavail <= s.f_bfree, f"{what} f_bavail {s.f_bavail} > f_bfree {s.f_bfree}")
        true(s.f_namemax >= 255, f"{what} f_namemax {s.f_namemax} < 255")


@check("fsync")
def _c(c):
    """fsync, fdatasync (write and read-only fds), fsync of a dir, O_SYNC/O_DSYNC writes succeed"""
    p = c.p("f")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        write_all(fd, rand_bytes(CHUNK + 10, 13))
        os.fsync(fd)
        pwrite_all(fd, b"more", 5)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    fd = os.open(c.d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for flag in (os.O_SYNC, os.O_DSYNC):
        fd = os.open(p, os.O_WRONLY | flag)
        try:
            pwrite_all(fd, b"sync", 0)
        finally:
            os.close(fd)
    got = read_file(p)
    eq((got[:4], got[5:9]), (b"sync", b"more"), "content after the synced writes")
    eq(len(got), CHUNK + 10, "size")


@check("posix_fallocate")
def _c(c):
    """posix_fallocate beyond EOF extends the size with zeros; inside the file changes nothing"""
    p = c.p("f")
    head = rand_bytes(100, 14)
    write_file(p, head)
    fd = os.open(p, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, CHUNK + 5)
        eq(os.fstat(fd).st_size, CHUNK + 5, "size after posix_fallocate(0, 1 MiB + 5)")
        got = pread_all(fd, 2 * MiB, 0)
        eq(got[:100], head, "data kept by posix_fallocate")
        expect_zeros(got[100:], "allocated part")
        os.posix_fallocate(fd, 10, 50)
        eq(os.fstat(fd).st_size, CHUNK + 5, "size after posix_fallocate inside the file")
        eq(pread_all(fd, 100, 0), head, "data after posix_fallocate inside the file")
    finally:
        os.close(fd)


def _fallocate_zeroing(c, mode, label):
    """Either the call succeeds and the range reads back as zeros with the size unchanged, or
    it fails with EOPNOTSUPP. A silent success that leaves data is a defect."""
    p = c.p("f")
    data = rand_bytes(3 * MiB, 15)
    write_file(p, data)
    off, ln = CHUNK - 5000, 10000 + CHUNK  # straddles 1 MiB and 2 MiB
    fd = os.open(p, os.O_RDWR)
    try:
        try:
            fallocate(fd, mode, off, ln)
        except OSError as e:
            if e.errno == EOPNOTSUPP and not c.require_fallocate:
                c.note(f"{label} not supported (EOPNOTSUPP)")
                eq_bytes(pread_all(fd, 4 * MiB, 0), data, "content after the refused fallocate")
                return
            fail(f"fallocate({label}) failed with {ename(e.errno)} ({e.strerror})"
                 + ("" if c.require_fallocate else "; only EOPNOTSUPP is acceptable"))
        eq(os.fstat(fd).st_size, len(data), f"size after {label}")
        got = pread_all(fd, 4 * MiB, 0)
        eq_bytes(got[:off], data[:off], f"data before the {label} range")
        expect_zeros(got[off:off + ln], f"{label} range")
        eq_bytes(got[off + ln:], data[off + ln:], f"data after the {label} range")
    finally:
        os.close(fd)


@check("fallocate_punch_hole")
def _c(c):
    """fallocate(PUNCH_HOLE|KEEP_SIZE) zeros the range, size unchanged (or EOPNOTSUPP)"""
    _fallocate_zeroing(c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "PUNCH_HOLE|KEEP_SIZE")


@check("fallocate_zero_range")
def _c(c):
    """fallocate(ZERO_RANGE) zeros the range, size unchanged (or EOPNOTSUPP; tmpfs has none)"""
    _fallocate_zeroing(c, FALLOC_FL_ZERO_RANGE, "ZERO_RANGE")


@check("fallocate_keep_size")
def _c(c):
    """fallocate(KEEP_SIZE) beyond EOF leaves size and data alone (or EOPNOTSUPP)"""
    p = c.p("f")
    write_file(p, b"0123456789")
    fd = os.open(p, os.O_RDWR)
    try:
        try:
            fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 * MiB)
        except OSError as e:
            if e.errno == EOPNOTSUPP and not c.require_fallocate:
                c.note("KEEP_SIZE not supported (EOPNOTSUPP)")
                return
            fail(f"fallocate(KEEP_SIZE) failed with {ename(e.errno)}"
                 + ("" if c.require_fallocate else "; only EOPNOTSUPP is acceptable"))
        eq(os.fstat(fd).st_size, 10, "size after fallocate(KEEP_SIZE) beyond EOF")
        eq(pread_all(fd, 100, 0), b"0123456789", "content")
    finally:
        os.close(fd)


@check("rename_exdev")
def _c(c):
    """rename/link into --other-dir (another file system) -> EXDEV"""
    if not c.other_dir:
        skip("no --other-dir given")
    if os.stat(c.other_dir).st_dev == os.stat(c.d).st_dev:
        skip("--other-dir is on the same file system")
    write_file(c.p("f"), b"x")
    os.mkdir(c.p("d"))
    od = os.path.join(c.other_dir, f"posix_checks_exdev.{os.getpid()}")
    os.mkdir(od)
    try:
        expect_errno(errno.EXDEV, os.rename, c.p("f"), os.path.join(od, "f"), what="rename of a file across file systems")
        expect_errno(errno.EXDEV, os.rename, c.p("d"), os.path.join(od, "d"), what="rename of a dir across file systems")
        expect_errno(errno.EXDEV, os.link, c.p("f"), os.path.join(od, "l"), what="link across file systems")
        eq(os.listdir(od), [], "the other file system's dir")
    finally:
        shutil.rmtree(od, ignore_errors=True)
    eq(read_file(c.p("f")), b"x", "the file after the refused rename")


@check("unlink_open_file")
def _c(c):
    """an unlinked open file stays readable/writable through its fd (st_nlink 0); its name is gone"""
    p = c.p("f")
    data = rand_bytes(CHUNK + 100, 16)
    write_file(p, data)
    fd = os.open(p, os.O_RDWR)
    try:
        os.unlink(p)
        expect_missing(p)
        eq(os.listdir(c.d), [], "listing after unlinking the open file (no leftover hidden names)")
        eq_bytes(pread_all(fd, 2 * MiB, 0), data, "data read through the fd after unlink")
        eq(os.fstat(fd).st_nlink, 0, "fstat st_nlink after unlink")
        pwrite_all(fd, b"still writable", CHUNK)
        eq(pread_all(fd, 14, CHUNK), b"still writable", "write then read through the fd after unlink")
        write_file(p, b"a new file")
        eq(pread_all(fd, 4, 0), data[:4], "old fd unaffected by a new file under the same name")
    finally:
        os.close(fd)
    eq(read_file(p), b"a new file", "the new file")
    eq(os.listdir(c.d), ["f"], "listing after closing")


@check("two_fds_coherent")
def _c(c):
    """two fds on one file see each other's writes and truncations at once"""
    p = c.p("f")
    write_file(p, bytes(100))
    f1 = os.open(p, os.O_RDWR)
    f2 = os.open(p, os.O_RDWR)
    try:
        pwrite_all(f1, b"one", 10)
        eq(os.pread(f2, 3, 10), b"one", "write through fd1 read through fd2")
        pwrite_all(f2, b"two", CHUNK + 1)
        eq(os.fstat(f1).st_size, CHUNK + 4, "size seen through fd1 after fd2 extended the file")
        eq(os.pread(f1, 3, CHUNK + 1), b"two", "write through fd2 read through fd1")
        os.ftruncate(f2, 12)
        eq(os.fstat(f1).st_size, 12, "size seen through fd1 after ftruncate on fd2")
        eq(pread_all(f1, 100, 0), bytes(10) + b"on", "content seen through fd1 after ftruncate on fd2")
    finally:
        os.close(f1)
        os.close(f2)


@check("mmap_shared")
def _c(c):
    """a MAP_SHARED mapping writes through to the file and sees pwrite()s"""
    p = c.p("f")
    model = bytearray(rand_bytes(2 * MiB + 100, 17))
    write_file(p, model)
    fd = os.open(p, os.O_RDWR)
    try:
        try:
            m = mmap.mmap(fd, len(model), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            fail(f"mmap(MAP_SHARED, PROT_WRITE) failed: {ename(e.errno)}")
        try:
            m[CHUNK - 3:CHUNK + 3] = b"MMAPED"
            model[CHUNK - 3:CHUNK + 3] = b"MMAPED"
            m.flush()
            pwrite_all(fd, b"PWRITE", 2 * MiB + 50)
            eq(m[2 * MiB + 50:2 * MiB + 56], b"PWRITE", "pwrite seen through the mapping")
            model[2 * MiB + 50:2 * MiB + 56] = b"PWRITE"
        finally:
            m.close()
    finally:
        os.close(fd)
    eq_bytes(read_file(p), bytes(model), "file content after writing through the mapping")


# ========================================================================================
