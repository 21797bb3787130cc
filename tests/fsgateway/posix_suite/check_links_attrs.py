"""POSIX checks: symlinks, attributes and times, special files. Registered on import (posix_suite/base.py)."""

from posix_suite.base import *  # noqa: F401,F403 - the checks' shared vocabulary


# symlinks

@check("symlink_readlink")
def _c(c):
    """symlink/readlink round trip; lstat S_ISLNK with st_size = len(target); stat/open follow; O_NOFOLLOW -> ELOOP"""
    write_file(c.p("file"), b"through the link")
    for name, target in (("rel", "file"), ("abs", c.p("file")), ("odd", "../x/./y//z"),
                         ("utf8", "d\u00e9j\u00e0-vu")):
        os.symlink(target, c.p(name))
        eq(os.readlink(c.p(name)), target, f"readlink of the {name} symlink")
        st = os.lstat(c.p(name))
        true(stat.S_ISLNK(st.st_mode), f"lstat S_ISLNK of the {name} symlink (mode {oct_mode(st.st_mode)})")
        eq(st.st_size, len(os.fsencode(target)), f"lstat st_size of the {name} symlink")
    eq(read_file(c.p("rel")), b"through the link", "open through a relative symlink")
    eq(read_file(c.p("abs")), b"through the link", "open through an absolute symlink")
    eq(os.stat(c.p("rel")).st_ino, os.stat(c.p("file")).st_ino, "stat follows the symlink")
    expect_errno(errno.ELOOP, os.open, c.p("rel"), os.O_RDONLY | os.O_NOFOLLOW, what="open(symlink, O_NOFOLLOW)")
    os.mkdir(c.p("dir"))
    os.symlink("dir", c.p("dlink"))
    write_file(c.p("dlink", "inside"), b"i")
    eq(os.listdir(c.p("dir")), ["inside"], "file created through a symlink to a dir")


@check("symlink_dangling")
def _c(c):
    """a dangling symlink: lstat/readlink work, stat/open -> ENOENT, O_CREAT creates the target"""
    os.symlink("target", c.p("s"))
    true(stat.S_ISLNK(os.lstat(c.p("s")).st_mode), "lstat of a dangling symlink")
    eq(os.readlink(c.p("s")), "target", "readlink of a dangling symlink")
    expect_errno(errno.ENOENT, os.stat, c.p("s"), what="stat of a dangling symlink")
    expect_errno(errno.ENOENT, os.open, c.p("s"), os.O_RDONLY, what="open of a dangling symlink")
    write_file(c.p("s"), b"made")
    eq(read_file(c.p("target")), b"made", "file created by O_CREAT through a dangling symlink")
    true(stat.S_ISLNK(os.lstat(c.p("s")).st_mode), "the symlink stays a symlink")


@check("symlink_loop_eloop")
def _c(c):
    """a->b, b->a and a self-loop: open and stat -> ELOOP"""
    os.symlink("b", c.p("a"))
    os.symlink("a", c.p("b"))
    os.symlink("self", c.p("self"))
    for n in ("a", "b", "self"):
        expect_errno(errno.ELOOP, os.open, c.p(n), os.O_RDONLY, what=f"open of looping symlink {n}")
        expect_errno(errno.ELOOP, os.stat, c.p(n), what=f"stat of looping symlink {n}")
    expect_errno(errno.ELOOP, os.open, c.p("a"), os.O_WRONLY | os.O_CREAT, 0o644,
                 what="open(O_CREAT) of a looping symlink")
    eq(os.readlink(c.p("a")), "b", "readlink of a looping symlink")


@check("readlink_einval")
def _c(c):
    """readlink of a regular file or a directory -> EINVAL"""
    write_file(c.p("f"), b"x")
    os.mkdir(c.p("d"))
    expect_errno(errno.EINVAL, os.readlink, c.p("f"), what="readlink of a regular file")
    expect_errno(errno.EINVAL, os.readlink, c.p("d"), what="readlink of a directory")


@check("symlink_long_target")
def _c(c):
    """a 1000-byte symlink target round trips; lstat st_size 1000"""
    target = ("/".join("seg%04d" % i + "x" * 12 for i in range(60)))[:999] + "z"
    eq(len(target), 1000, "test target length")
    os.symlink(target, c.p("s"))
    eq(os.readlink(c.p("s")), target, "readlink of a 1000-byte target")
    eq(os.lstat(c.p("s")).st_size, 1000, "lstat st_size")


@check("symlink_eexist")
def _c(c):
    """symlink onto an existing file, dir or symlink -> EEXIST"""
    write_file(c.p("f"), b"x")
    os.mkdir(c.p("d"))
    os.symlink("f", c.p("s"))
    for n in ("f", "d", "s"):
        expect_errno(errno.EEXIST, os.symlink, "whatever", c.p(n), what=f"symlink onto existing {n}")
    eq(read_file(c.p("f")), b"x", "file unchanged")
    eq(os.readlink(c.p("s")), "f", "symlink unchanged")


# ========================================================================================
# attributes and times

@check("chmod")
def _c(c):
    """chmod/fchmod mode bits (incl. setuid/setgid/sticky) read back exactly"""
    write_file(c.p("f"), b"x")
    for m in (0o644, 0o600, 0o000, 0o777, 0o4755, 0o2755, 0o6711, 0o1644, 0o640):
        os.chmod(c.p("f"), m)
        st = os.stat(c.p("f"))
        eq_mode(stat.S_IMODE(st.st_mode), m, f"mode after chmod {oct_mode(m)}")
        true(stat.S_ISREG(st.st_mode), "file type kept by chmod")
    fd = os.open(c.p("f"), os.O_RDONLY)
    try:
        os.fchmod(fd, 0o604)
        eq_mode(stat.S_IMODE(os.fstat(fd).st_mode), 0o604, "mode after fchmod")
    finally:
        os.close(fd)
    os.mkdir(c.p("d"))
    for m in (0o700, 0o1777, 0o2755, 0o755):
        os.chmod(c.p("d"), m)
        st = os.stat(c.p("d"))
        eq_mode(stat.S_IMODE(st.st_mode), m, f"dir mode after chmod {oct_mode(m)}")
        true(stat.S_ISDIR(st.st_mode), "dir type kept by chmod")


@check("chown")
def _c(c):
    """chown/fchown/lchown (root): uid and gid read back; -1 keeps a field"""
    if os.geteuid() != 0:
        skip("chown to other ids needs root")
    write_file(c.p("f"), b"x")
    os.chown(c.p("f"), 1234, 5678)
    st = os.stat(c.p("f"))
    eq((st.st_uid, st.st_gid), (1234, 5678), "uid/gid after chown")
    os.chown(c.p("f"), -1, 42)
    st = os.stat(c.p("f"))
    eq((st.st_uid, st.st_gid), (1234, 42), "uid/gid after chown(-1, 42)")
    os.chown(c.p("f"), 77, -1)
    st = os.stat(c.p("f"))
    eq((st.st_uid, st.st_gid), (77, 42), "uid/gid after chown(77, -1)")
    fd = os.open(c.p("f"), os.O_RDONLY)
    try:
        os.fchown(fd, 0, 0)
        st = os.fstat(fd)
        eq((st.st_uid, st.st_gid), (0, 0), "uid/gid after fchown")
    finally:
        os.close(fd)
    os.symlink("f", c.p("s"))
    os.chown(c.p("s"), 4321, 8765, follow_symlinks=False)
    ls = os.lstat(c.p("s"))
    eq((ls.st_uid, ls.st_gid), (4321, 8765), "symlink uid/gid after lchown")
    st = os.stat(c.p("f"))
    eq((st.st_uid, st.st_gid), (0, 0), "lchown must not change the target")
    os.mkdir(c.p("d"))
    os.chown(c.p("d"), 99, 98)
    st = os.stat(c.p("d"))
    eq((st.st_uid, st.st_gid), (99, 98), "dir uid/gid after chown")


@check("chown_clears_setid")
def _c(c):
    """chown of a file clears its setuid bit and its setgid bit when group-executable (root too)"""
    # Linux since 2.2.13 treats root like anyone here; FUSE's kernel side does the same
    # (it sends the mode change unless the daemon declares handle_killpriv).
    if os.geteuid() != 0:
        skip("chown to other ids needs root")
    write_file(c.p("f"), b"x")
    os.chmod(c.p("f"), 0o6755)
    os.chown(c.p("f"), 1000, 1000)
    eq_mode(stat.S_IMODE(os.stat(c.p("f")).st_mode), 0o755, "mode after chown of a 06755 file")


@check("utime_ns")
def _c(c):
    """os.utime(ns=...) sets atime/mtime exactly (a microsecond-only match passes with a note); utime(None) = now"""
    write_file(c.p("f"), b"x")
    os.mkdir(c.p("d"))
    a, m = 1_500_000_000_123_456_789, 1_600_000_000_987_654_321
    lost = []
    for p in (c.p("f"), c.p("d")):
        os.utime(p, ns=(a, m))
        st = os.stat(p)
        got = (st.st_atime_ns, st.st_mtime_ns)
        if got != (a, m):
            if (got[0] // 1000, got[1] // 1000) != (a // 1000, m // 1000):
                fail(f"(atime_ns, mtime_ns) of {os.path.basename(p)} after utime: got {got}, expected {(a, m)}")
            lost.append(os.path.basename(p))
    if lost:
        c.note(f"utime kept microseconds but not nanoseconds for {lost}")
    os.utime(c.p("f"), (1_000_000_000, 1_000_000_001))
    st = os.stat(c.p("f"))
    eq((st.st_atime_ns, st.st_mtime_ns), (1_000_000_000 * 10**9, 1_000_000_001 * 10**9), "times after utime in seconds")
    t0 = time.time_ns()
    os.utime(c.p("f"))
    t1 = time.time_ns()
    st = os.stat(c.p("f"))
    for what, v in (("atime", st.st_atime_ns), ("mtime", st.st_mtime_ns)):
        true(t0 - 10**9 <= v <= t1 + 10**9, f"{what} after utime(None) is {v}, not within 1 s of now ({t0})")


@check("utimensat_omit_now")
def _c(c):
    """utimensat with UTIME_OMIT keeps that time and UTIME_NOW sets it to now"""
    write_file(c.p("f"), b"x")
    os.utime(c.p("f"), ns=(1_400_000_000_000_000_001, 1_400_000_000_000_000_002))
    utimensat(c.p("f"), UTIME_OMIT, (1_500_000_000, 5))
    st = os.stat(c.p("f"))
    eq((st.st_atime_ns, st.st_mtime_ns), (1_400_000_000_000_000_001, 1_500_000_000_000_000_005),
       "times after setting mtime with atime UTIME_OMIT")
    utimensat(c.p("f"), (1_300_000_000, 0), UTIME_OMIT)
    st = os.stat(c.p("f"))
    eq((st.st_atime_ns, st.st_mtime_ns), (1_300_000_000_000_000_000, 1_500_000_000_000_000_005),
       "times after setting atime with mtime UTIME_OMIT")
    t0 = time.time_ns()
    utimensat(c.p("f"), UTIME_NOW, UTIME_OMIT)
    st = os.stat(c.p("f"))
    true(abs(st.st_atime_ns - t0) < 2 * 10**9, f"atime after UTIME_NOW is {st.st_atime_ns}, not about now ({t0})")
    eq(st.st_mtime_ns, 1_500_000_000_000_000_005, "mtime kept by UTIME_OMIT")


def _times(p):
    st = os.stat(p)
    return st.st_mtime_ns, st.st_ctime_ns


@check("mtime_ctime_write")
def _c(c):
    """a write moves mtime from an old value to now and advances ctime"""
    p = c.p("f")
    write_file(p, b"x" * 100)
    old = time.time_ns() - 3600 * 10**9
    os.utime(p, ns=(old, old))
    m0, c0 = _times(p)
    eq(m0, old, "mtime set back by utime")
    settle(max(m0, c0))
    t0 = time.time_ns()
    fd = os.open(p, os.O_WRONLY)
    try:
        pwrite_all(fd, b"y", 50)
    finally:
        os.close(fd)
    m1, c1 = _times(p)
    true(m1 > m0, f"mtime not updated by a write ({m0} -> {m1})")
    true(abs(m1 - t0) < 2 * 10**9, f"mtime after a write is {m1}, not about now ({t0})")
    true(c1 > c0, f"ctime not advanced by a write ({c0} -> {c1})")


@check("mtime_ctime_truncate")
def _c(c):
    """truncate and ftruncate move mtime to now and advance ctime"""
    p = c.p("f")
    write_file(p, b"x" * 100)
    for how in ("truncate", "ftruncate"):
        old = time.time_ns() - 3600 * 10**9
        os.utime(p, ns=(old, old))
        m0, c0 = _times(p)
        settle(max(m0, c0))
        if how == "truncate":
            os.truncate(p, 10)
        else:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.ftruncate(fd, CHUNK + 1)
            finally:
                os.close(fd)
        m1, c1 = _times(p)
        true(m1 > m0 and abs(m1 - time.time_ns()) < 2 * 10**9, f"mtime not set to now by {how} ({m0} -> {m1})")
        true(c1 > c0, f"ctime not advanced by {how} ({c0} -> {c1})")


@check("ctime_chmod_link")
def _c(c):
    """chmod, chown and link advance ctime and leave mtime alone"""
    p = c.p("f")
    write_file(p, b"x")
    ops = [("chmod", lambda: os.chmod(p, 0o600)),
           ("link", lambda: os.link(p, c.p("g")))]
    if os.geteuid() == 0:
        ops.append(("chown", lambda: os.chown(p, 1, 1)))
    for what, op in ops:
        m0, c0 = _times(p)
        settle(max(m0, c0))
        op()
        m1, c1 = _times(p)
        true(c1 > c0, f"ctime not advanced by {what} ({c0} -> {c1})")
        eq(m1, m0, f"mtime after {what}")


@check("dir_mtime")
def _c(c):
    """a directory's mtime and ctime move when entries are created, removed or renamed in or out"""
    d = c.p("d")
    os.mkdir(d)
    os.mkdir(c.p("other"))
    steps = [("create", lambda: touch(os.path.join(d, "f"))),
             ("mkdir", lambda: os.mkdir(os.path.join(d, "sub"))),
             ("rename within", lambda: os.rename(os.path.join(d, "f"), os.path.join(d, "g"))),
             ("rename out", lambda: os.rename(os.path.join(d, "g"), c.p("other", "g"))),
             ("rename in", lambda: os.rename(c.p("other", "g"), os.path.join(d, "h"))),
             ("symlink", lambda: os.symlink("h", os.path.join(d, "s"))),
             ("link", lambda: os.link(os.path.join(d, "h"), os.path.join(d, "h2"))),
             ("unlink", lambda: os.unlink(os.path.join(d, "h"))),
             ("rmdir", lambda: os.rmdir(os.path.join(d, "sub")))]
    for what, op in steps:
        old = time.time_ns() - 3600 * 10**9
        os.utime(d, ns=(old, old))
        _m0, c0 = _times(d)
        settle(c0)
        op()
        m1, c1 = _times(d)
        true(m1 > old and abs(m1 - time.time_ns()) < 2 * 10**9, f"dir mtime not set to now by {what} ({old} -> {m1})")
        true(c1 > c0, f"dir ctime not advanced by {what} ({c0} -> {c1})")


# ========================================================================================
# special files

@check("mkfifo")
def _c(c):
    """mkfifo makes an S_ISFIFO with the mode given that passes data between two opens"""
    p = c.p("fifo")
    os.mkfifo(p, 0o640)
    st = os.lstat(p)
    true(stat.S_ISFIFO(st.st_mode), f"S_ISFIFO after mkfifo (mode {oct_mode(st.st_mode)})")
    eq_mode(stat.S_IMODE(st.st_mode), 0o640, "fifo mode")
    eq(os.listdir(c.d), ["fifo"], "listing")
    r = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        w = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
        try:
            write_all(w, b"through the fifo")
        finally:
            os.close(w)
        eq(os.read(r, 100), b"through the fifo", "data read from the fifo")
    finally:
        os.close(r)
    os.unlink(p)
    eq(os.listdir(c.d), [], "listing after unlinking the fifo")


@check("mknod_reg")
def _c(c):
    """mknod(S_IFREG|0640) makes an empty regular file; mknod(S_IFIFO) a fifo; existing -> EEXIST"""
    p = c.p("f")
    os.mknod(p, stat.S_IFREG | 0o640)
    st = os.lstat(p)
    true(stat.S_ISREG(st.st_mode), f"S_ISREG after mknod (mode {oct_mode(st.st_mode)})")
    eq_mode(stat.S_IMODE(st.st_mode), 0o640, "mode after mknod")
    eq(st.st_size, 0, "size after mknod")
    write_file(p, b"data")
    eq(read_file(p), b"data", "read back from the mknod'd file")
    expect_errno(errno.EEXIST, os.mknod, p, stat.S_IFREG | 0o600, what="mknod over an existing file")
    os.mknod(c.p("fifo"), stat.S_IFIFO | 0o600)
    true(stat.S_ISFIFO(os.lstat(c.p("fifo")).st_mode), "S_ISFIFO after mknod(S_IFIFO)")


# ========================================================================================
