"""POSIX checks: files: create/open/read/write, truncate. Registered on import (posix_suite/base.py)."""

from posix_suite.base import *  # noqa: F401,F403 - the checks' shared vocabulary


# ========================================================================================
# files: create/open/read/write

@check("create_write_read")
def _c(c):
    """create, write, fstat while open, lseek SEEK_END, reopen and read back, EOF reads"""
    p = c.p("f")
    data = rand_bytes(10000, 1)
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        eq(os.fstat(fd).st_size, 0, "size of a newly created file")
        write_all(fd, data)
        eq(os.fstat(fd).st_size, len(data), "fstat size while still open after the write")
        eq(os.lseek(fd, 0, os.SEEK_CUR), len(data), "file offset after the write")
        eq(os.lseek(fd, 0, os.SEEK_END), len(data), "lseek(SEEK_END)")
        eq(os.read(fd, 100), b"", "read at EOF")
        os.lseek(fd, 0, os.SEEK_SET)
        eq_bytes(read_all(fd, 3000), data, "read back through the same fd")
        eq(os.write(fd, b""), 0, "zero-length write")
    finally:
        os.close(fd)
    st = os.stat(p)
    true(stat.S_ISREG(st.st_mode), f"S_ISREG of a created file (mode {oct_mode(st.st_mode)})")
    eq(st.st_size, len(data), "st_size after close")
    eq(st.st_nlink, 1, "st_nlink of a new file")
    eq_bytes(read_file(p), data, "read after reopening")
    eq_bytes(read_file(p, 777), data, "read after reopening, 777-byte reads")
    touch(c.p("empty"))
    eq(os.stat(c.p("empty")).st_size, 0, "size of an empty file")
    eq(read_file(c.p("empty")), b"", "content of an empty file")


@check("create_mode_umask")
def _c(c):
    """open(O_CREAT) and mkdir apply the mode argument minus the umask"""
    old = os.umask(0o022)
    try:
        touch(c.p("a"), 0o666)
        os.mkdir(c.p("da"), 0o777)
        os.umask(0o077)
        touch(c.p("b"), 0o666)
        os.mkdir(c.p("db"), 0o777)
        os.umask(0)
        touch(c.p("c"), 0o640)
    finally:
        os.umask(old)
    eq_mode(stat.S_IMODE(os.stat(c.p("a")).st_mode), 0o644, "mode of a file created 0666 under umask 022")
    eq_mode(stat.S_IMODE(os.stat(c.p("da")).st_mode), 0o755, "mode of a dir created 0777 under umask 022")
    eq_mode(stat.S_IMODE(os.stat(c.p("b")).st_mode), 0o600, "mode of a file created 0666 under umask 077")
    eq_mode(stat.S_IMODE(os.stat(c.p("db")).st_mode), 0o700, "mode of a dir created 0777 under umask 077")
    eq_mode(stat.S_IMODE(os.stat(c.p("c")).st_mode), 0o640, "mode of a file created 0640 under umask 0")


@check("open_excl_eexist")
def _c(c):
    """O_CREAT|O_EXCL on an existing file, dir or dangling symlink -> EEXIST; on a new name works"""
    p = c.p("f")
    write_file(p, b"original")
    expect_errno(errno.EEXIST, os.open, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644,
                 what="O_CREAT|O_EXCL on an existing file")
    eq(read_file(p), b"original", "content after the failed O_EXCL open")
    os.mkdir(c.p("d"))
    expect_errno(errno.EEXIST, os.open, c.p("d"), os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644,
                 what="O_CREAT|O_EXCL on an existing directory")
    os.symlink("nowhere", c.p("dangling"))
    expect_errno(errno.EEXIST, os.open, c.p("dangling"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644,
                 what="O_CREAT|O_EXCL on a dangling symlink (must not follow it)")
    expect_missing(c.p("nowhere"), "the dangling symlink's target after O_CREAT|O_EXCL on the link")
    fd = os.open(c.p("new"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    eq(os.stat(c.p("new")).st_size, 0, "size of the O_EXCL-created file")


@check("open_append")
def _c(c):
    """O_APPEND writes go to the end whatever the offset, across a 1 MiB boundary, two appenders"""
    p = c.p("f")
    write_file(p, b"hello")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        write_all(fd, b" world")
        eq(os.lseek(fd, 0, os.SEEK_CUR), 11, "offset after an O_APPEND write")
        os.lseek(fd, 2, os.SEEK_SET)
        write_all(fd, b"!")
    finally:
        os.close(fd)
    eq(read_file(p), b"hello world!", "content after O_APPEND writes with the offset moved back")
    base = rand_bytes(CHUNK - 10, 2)
    write_file(p, base)
    tail = rand_bytes(100, 3)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, tail)
    finally:
        os.close(fd)
    eq_bytes(read_file(p), base + tail, "append straddling the 1 MiB boundary")
    write_file(p, b"")
    f1 = os.open(p, os.O_WRONLY | os.O_APPEND)
    f2 = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        write_all(f1, b"a1")
        write_all(f2, b"b22")
        write_all(f1, b"c333")
    finally:
        os.close(f1)
        os.close(f2)
    eq(read_file(p), b"a1b22c333", "two O_APPEND fds writing in turn")


@check("open_trunc")
def _c(c):
    """O_TRUNC empties a multi-chunk file; extending it again shows zeros, not the old data"""
    p = c.p("f")
    write_file(p, rand_bytes(3 * MiB, 4))
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    try:
        eq(os.fstat(fd).st_size, 0, "size right after open(O_TRUNC)")
        write_all(fd, b"abc")
    finally:
        os.close(fd)
    eq(os.stat(p).st_size, 3, "size after O_TRUNC + 3-byte write")
    eq(read_file(p), b"abc", "content after O_TRUNC + write")
    os.truncate(p, 2 * MiB + 5)
    got = read_file(p)
    eq(got[:3], b"abc", "head after extending the truncated file")
    expect_zeros(got[3:], "bytes 3.. after extending a file emptied by O_TRUNC (old data must not come back)")


@check("pread_pwrite")
def _c(c):
    """pwrite/pread at offsets (one straddling 1 MiB) without moving the file offset"""
    p = c.p("f")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        eq(os.pwrite(fd, b"AAAA", 0), 4, "pwrite count")
        pwrite_all(fd, b"BBBB", 10)
        pwrite_all(fd, b"CCCCCC", CHUNK - 3)
        eq(os.lseek(fd, 0, os.SEEK_CUR), 0, "file offset after pwrite (must not move)")
        eq(os.pread(fd, 4, 10), b"BBBB", "pread at 10")
        eq(os.pread(fd, 6, 4), b"\0" * 6, "pread of the gap between pwrites")
        eq(os.pread(fd, 6, CHUNK - 3), b"CCCCCC", "pread straddling the 1 MiB boundary")
        eq(os.pread(fd, 100, CHUNK + 1), b"CC", "short pread at EOF")
        eq(os.pread(fd, 10, CHUNK + 3), b"", "pread at EOF")
        eq(os.pread(fd, 10, CHUNK + 1000), b"", "pread past EOF")
        eq(os.lseek(fd, 0, os.SEEK_CUR), 0, "file offset after pread (must not move)")
        eq(os.fstat(fd).st_size, CHUNK + 3, "size after the pwrites")
        eq(os.read(fd, 4), b"AAAA", "read at offset 0 after the preads")
    finally:
        os.close(fd)


@check("write_past_eof_hole")
def _c(c):
    """lseek past EOF + write leaves a zero-filled hole of the right size"""
    p = c.p("f")
    write_file(p, b"head")
    fd = os.open(p, os.O_WRONLY)
    try:
        os.lseek(fd, 3 * MiB + 5, os.SEEK_SET)
        write_all(fd, b"tail")
    finally:
        os.close(fd)
    st = os.stat(p)
    eq(st.st_size, 3 * MiB + 9, "size after writing 4 bytes at 3 MiB+5")
    got = read_file(p)
    eq(len(got), 3 * MiB + 9, "bytes read")
    eq(got[:4], b"head", "data before the hole")
    expect_zeros(got[4:3 * MiB + 5], "the hole")
    eq(got[3 * MiB + 5:], b"tail", "data after the hole")
    # Allocation is file-system dependent (and FUSE reports what the daemon says): a note only.
    if st.st_blocks * 512 >= st.st_size:
        c.note(f"hole not sparse: st_blocks={st.st_blocks} for size {st.st_size}")


@check("read_hole_zeros")
def _c(c):
    """reads inside a hole (within a chunk, across chunks) return zeros; past EOF return b''"""
    p = c.p("f")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        pwrite_all(fd, b"x", 2 * MiB + 100)
        eq(os.fstat(fd).st_size, 2 * MiB + 101, "size")
        expect_zeros(pread_all(fd, 4096, 0), "hole at offset 0")
        expect_zeros(pread_all(fd, 8192, CHUNK - 4096), "hole straddling 1 MiB")
        expect_zeros(pread_all(fd, CHUNK + 100, CHUNK - 50), "hole spanning a whole chunk")
        eq(pread_all(fd, 200, 2 * MiB), bytes(100) + b"x", "hole then data up to EOF")
        eq(os.pread(fd, 10, 2 * MiB + 101), b"", "read at EOF")
    finally:
        os.close(fd)


@check("sparse_large_offset")
def _c(c):
    """a write at 4 GiB + 7 (64-bit offsets): size, data, and zeros in the hole"""
    p = c.p("f")
    off = (4 << 30) + 7
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        pwrite_all(fd, b"far", off)
        eq(os.fstat(fd).st_size, off + 3, "size after a write at 4 GiB + 7")
        eq(os.pread(fd, 10, off), b"far", "data at 4 GiB + 7")
        expect_zeros(pread_all(fd, 8192, off - 8192), "hole just below 4 GiB + 7")
        expect_zeros(pread_all(fd, 4096, 1 << 31), "hole at 2 GiB")
        expect_zeros(pread_all(fd, 4096, 0), "hole at 0")
    finally:
        os.close(fd)
    eq(os.stat(p).st_size, off + 3, "stat size after close")
    os.truncate(p, 10)
    eq(os.stat(p).st_size, 10, "size after truncating the 4 GiB file to 10")


@check("large_file_sha256")
def _c(c):
    """5 MiB + 12345 random bytes written in odd pieces; sha256 and boundary reads match"""
    p = c.p("big")
    n = 5 * MiB + 12345
    data = rand_bytes(n, 5)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for off in range(0, n, 100003):
            write_all(fd, data[off:off + 100003])
    finally:
        os.close(fd)
    eq(os.stat(p).st_size, n, "size")
    want = hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    fd = os.open(p, os.O_RDONLY)
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            h.update(b)
        eq(h.hexdigest(), want, "sha256 of the file read in 64 KiB pieces")
        for k in range(1, 6):
            eq_bytes(pread_all(fd, 8192, k * CHUNK - 4096), data[k * CHUNK - 4096:k * CHUNK + 4096],
                     f"8 KiB straddling the {k} MiB boundary")
    finally:
        os.close(fd)
    eq(hashlib.sha256(read_file(p, 8 * MiB)).hexdigest(), want, "sha256 of the file read in one piece")


@check("overwrite_mid_chunk")
def _c(c):
    """overwrites inside a chunk, straddling a boundary and extending past EOF keep the rest"""
    p = c.p("f")
    model = bytearray(rand_bytes(3 * MiB + 500, 6))
    write_file(p, model)
    patches = [(CHUNK + 1000, 4096), (2 * CHUNK - 100, 300), (12345, 1), (0, 17),
               (3 * MiB + 400, 200)]
    fd = os.open(p, os.O_WRONLY)
    try:
        for i, (off, ln) in enumerate(patches):
            b = rand_bytes(ln, 100 + i)
            pwrite_all(fd, b, off)
            model[off:off + ln] = b
    finally:
        os.close(fd)
    eq(os.stat(p).st_size, len(model), "size after the overwrites")
    eq_bytes(read_file(p), bytes(model), "content after the overwrites")


# ========================================================================================
# truncate

@check("truncate_up")
def _c(c):
    """truncate() up fills with zeros across chunks"""
    p = c.p("f")
    write_file(p, b"abc")
    os.truncate(p, 2 * MiB + 7)
    eq(os.stat(p).st_size, 2 * MiB + 7, "size after truncate up")
    got = read_file(p)
    eq(got[:3], b"abc", "data before the extension")
    expect_zeros(got[3:], "extension")


@check("truncate_down_extend")
def _c(c):
    """truncate() down drops data; extending again reads zeros, not the old bytes"""
    p = c.p("f")
    data = rand_bytes(3 * MiB, 7)
    write_file(p, data)
    os.truncate(p, CHUNK + 10)
    eq(os.stat(p).st_size, CHUNK + 10, "size after truncate down")
    eq_bytes(read_file(p), data[:CHUNK + 10], "content after truncate down")
    os.truncate(p, 3 * MiB)
    got = read_file(p)
    eq_bytes(got[:CHUNK + 10], data[:CHUNK + 10], "kept part after extending again")
    expect_zeros(got[CHUNK + 10:], "re-extended part (old data must not reappear)")
    os.truncate(p, 0)
    eq(os.stat(p).st_size, 0, "size after truncate to 0")
    fd = os.open(p, os.O_WRONLY)
    try:
        pwrite_all(fd, b"Z", 2 * MiB)
    finally:
        os.close(fd)
    got = read_file(p)
    eq(len(got), 2 * MiB + 1, "size after truncate 0 + write at 2 MiB")
    expect_zeros(got[:2 * MiB], "hole after truncate 0 + write at 2 MiB (old data must not reappear)")


@check("ftruncate")
def _c(c):
    """ftruncate down/up on an open fd; a write at the old offset then leaves a hole"""
    p = c.p("f")
    data = rand_bytes(2 * MiB, 8)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        write_all(fd, data)
        os.ftruncate(fd, 1000)
        eq(os.fstat(fd).st_size, 1000, "fstat size after ftruncate down")
        eq_bytes(pread_all(fd, 5000, 0), data[:1000], "content after ftruncate down")
        os.ftruncate(fd, 5000)
        eq(os.fstat(fd).st_size, 5000, "fstat size after ftruncate up")
        eq_bytes(pread_all(fd, 6000, 0), data[:1000] + bytes(4000), "content after ftruncate up")
        eq(os.lseek(fd, 0, os.SEEK_CUR), 2 * MiB, "ftruncate must not move the offset")
        write_all(fd, b"end")
        eq(os.fstat(fd).st_size, 2 * MiB + 3, "size after writing at the old offset")
        got = pread_all(fd, 3 * MiB, 0)
        eq_bytes(got[:1000], data[:1000], "head")
        expect_zeros(got[1000:2 * MiB], "gap between the truncation point and the write")
        eq(got[2 * MiB:], b"end", "the write")
    finally:
        os.close(fd)
    eq(os.stat(p).st_size, 2 * MiB + 3, "stat size after close")


# ========================================================================================
