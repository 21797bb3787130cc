"""POSIX checks: rename and hard links. Registered on import (posix_suite/base.py)."""

from posix_suite.base import *  # noqa: F401,F403 - the checks' shared vocabulary


# rename

@check("rename_file")
def _c(c):
    """rename keeps content and st_ino; old name gone; works across directories"""
    data = rand_bytes(CHUNK + 77, 9)
    write_file(c.p("f"), data)
    ino = os.stat(c.p("f")).st_ino
    os.rename(c.p("f"), c.p("g"))
    expect_missing(c.p("f"))
    eq(os.stat(c.p("g")).st_ino, ino, "st_ino after rename")
    eq_bytes(read_file(c.p("g")), data, "content after rename")
    os.mkdir(c.p("sub"))
    os.rename(c.p("g"), c.p("sub", "h"))
    eq(sorted(os.listdir(c.d)), ["sub"], "source dir listing after moving the file out")
    eq(os.listdir(c.p("sub")), ["h"], "target dir listing")
    eq(os.stat(c.p("sub", "h")).st_ino, ino, "st_ino after moving across directories")
    eq_bytes(read_file(c.p("sub", "h")), data, "content after moving across directories")


@check("rename_dir")
def _c(c):
    """rename a dir with contents; contents reachable by the new path, also moved into another dir"""
    os.makedirs(c.p("a", "sub"))
    write_file(c.p("a", "x"), b"xx")
    write_file(c.p("a", "sub", "y"), rand_bytes(CHUNK + 3, 10))
    os.rename(c.p("a"), c.p("b"))
    expect_missing(c.p("a"))
    expect_errno(errno.ENOENT, os.stat, c.p("a", "x"), what="stat of a file under the old dir name")
    eq(sorted(os.listdir(c.p("b"))), ["sub", "x"], "listing of the renamed dir")
    eq(read_file(c.p("b", "x")), b"xx", "file in the renamed dir")
    eq_bytes(read_file(c.p("b", "sub", "y")), rand_bytes(CHUNK + 3, 10), "file two levels down")
    os.mkdir(c.p("p"))
    os.rename(c.p("b"), c.p("p", "b"))
    eq_bytes(read_file(c.p("p", "b", "sub", "y")), rand_bytes(CHUNK + 3, 10),
             "file two levels down after moving the dir into p")
    write_file(c.p("p", "b", "sub", "new"), b"n")
    eq(sorted(os.listdir(c.p("p", "b", "sub"))), ["new", "y"], "creating inside the moved dir")
    eq(sorted(os.listdir(c.d)), ["p"], "top listing")


@check("rename_over_file")
def _c(c):
    """rename over an existing file replaces it: new st_ino, old inode loses a link, open fd keeps old data"""
    write_file(c.p("src"), b"new content")
    write_file(c.p("dst"), b"old content")
    os.link(c.p("dst"), c.p("old_alias"))
    src_ino = os.stat(c.p("src")).st_ino
    old_ino = os.stat(c.p("dst")).st_ino
    fd = os.open(c.p("dst"), os.O_RDONLY)
    try:
        os.rename(c.p("src"), c.p("dst"))
        expect_missing(c.p("src"))
        eq(read_file(c.p("dst")), b"new content", "target content after rename over it")
        eq(os.stat(c.p("dst")).st_ino, src_ino, "target st_ino is the source's")
        st = os.stat(c.p("old_alias"))
        eq(st.st_ino, old_ino, "the replaced inode's other name")
        eq(st.st_nlink, 1, "st_nlink of the replaced inode (lost the overwritten name)")
        eq(read_file(c.p("old_alias")), b"old content", "the replaced inode's data")
        eq(pread_all(fd, 100, 0), b"old content", "read through an fd opened on the replaced file")
    finally:
        os.close(fd)
    eq(sorted(os.listdir(c.d)), ["dst", "old_alias"], "listing")


@check("rename_self")
def _c(c):
    """rename(f, f) and rename between two hard links of one file do nothing and succeed"""
    write_file(c.p("f"), b"self")
    ino = os.stat(c.p("f")).st_ino
    os.rename(c.p("f"), c.p("f"))
    eq(read_file(c.p("f")), b"self", "content after rename onto itself")
    eq(os.stat(c.p("f")).st_ino, ino, "st_ino after rename onto itself")
    os.link(c.p("f"), c.p("g"))
    os.rename(c.p("f"), c.p("g"))
    eq(sorted(os.listdir(c.d)), ["f", "g"], "both hard links remain after rename(f, g)")
    eq(os.stat(c.p("f")).st_nlink, 2, "st_nlink after rename between hard links")
    os.mkdir(c.p("d"))
    touch(c.p("d", "x"))
    os.rename(c.p("d"), c.p("d"))
    eq(os.listdir(c.p("d")), ["x"], "dir content after rename onto itself")


@check("rename_dir_over_dir")
def _c(c):
    """rename dir over a non-empty dir -> ENOTEMPTY (or EEXIST); over an empty dir replaces it"""
    os.mkdir(c.p("a"))
    write_file(c.p("a", "fa"), b"a")
    os.mkdir(c.p("b"))
    write_file(c.p("b", "fb"), b"b")
    e = expect_errno((errno.ENOTEMPTY, errno.EEXIST), os.rename, c.p("a"), c.p("b"),
                     what="rename dir over a non-empty dir")
    if e == errno.EEXIST:
        c.note("rename over a non-empty dir gave EEXIST (POSIX allows it; Linux local fs give ENOTEMPTY)")
    eq(os.listdir(c.p("a")), ["fa"], "source dir after the failed rename")
    eq(os.listdir(c.p("b")), ["fb"], "target dir after the failed rename")
    os.mkdir(c.p("empty"))
    os.rename(c.p("a"), c.p("empty"))
    expect_missing(c.p("a"))
    eq(os.listdir(c.p("empty")), ["fa"], "target after rename over an empty dir")
    eq(read_file(c.p("empty", "fa")), b"a", "file in the renamed dir")


@check("rename_dir_over_file_enotdir")
def _c(c):
    """rename of a dir over a file -> ENOTDIR; both unchanged"""
    os.mkdir(c.p("d"))
    write_file(c.p("f"), b"f")
    expect_errno(errno.ENOTDIR, os.rename, c.p("d"), c.p("f"), what="rename dir over a file")
    true(os.path.isdir(c.p("d")), "source dir still there")
    eq(read_file(c.p("f")), b"f", "target file unchanged")


@check("rename_file_over_dir_eisdir")
def _c(c):
    """rename of a file over a dir (empty or not) -> EISDIR; both unchanged"""
    write_file(c.p("f"), b"f")
    os.mkdir(c.p("d"))
    expect_errno(errno.EISDIR, os.rename, c.p("f"), c.p("d"), what="rename file over an empty dir")
    touch(c.p("d", "x"))
    expect_errno(errno.EISDIR, os.rename, c.p("f"), c.p("d"), what="rename file over a non-empty dir")
    eq(read_file(c.p("f")), b"f", "source file unchanged")
    eq(os.listdir(c.p("d")), ["x"], "target dir unchanged")


@check("rename_into_own_subdir_einval")
def _c(c):
    """rename a dir into itself or its own subdirectory -> EINVAL"""
    os.makedirs(c.p("a", "b"))
    expect_errno(errno.EINVAL, os.rename, c.p("a"), c.p("a", "b", "c"), what="rename a -> a/b/c")
    expect_errno(errno.EINVAL, os.rename, c.p("a"), c.p("a", "x"), what="rename a -> a/x")
    eq(os.listdir(c.p("a")), ["b"], "a unchanged")
    eq(os.listdir(c.p("a", "b")), [], "a/b unchanged")


@check("renameat2_noreplace")
def _c(c):
    """renameat2(RENAME_NOREPLACE) onto an existing file or dir -> EEXIST; onto a new name works"""
    write_file(c.p("a"), b"a")
    write_file(c.p("b"), b"b")
    os.mkdir(c.p("d"))
    expect_errno(errno.EEXIST, renameat2, c.p("a"), c.p("b"), RENAME_NOREPLACE,
                 what="RENAME_NOREPLACE onto an existing file")
    expect_errno(errno.EEXIST, renameat2, c.p("a"), c.p("d"), RENAME_NOREPLACE,
                 what="RENAME_NOREPLACE onto an existing dir")
    eq((read_file(c.p("a")), read_file(c.p("b"))), (b"a", b"b"), "contents after the refused renames")
    renameat2(c.p("a"), c.p("c"), RENAME_NOREPLACE)
    expect_missing(c.p("a"))
    eq(read_file(c.p("c")), b"a", "content after RENAME_NOREPLACE to a new name")


@check("renameat2_exchange")
def _c(c):
    """renameat2(RENAME_EXCHANGE) swaps two files (content and st_ino), a file and a dir; missing -> ENOENT"""
    write_file(c.p("a"), b"content A")
    write_file(c.p("b"), rand_bytes(CHUNK + 5, 11))
    ia, ib = os.stat(c.p("a")).st_ino, os.stat(c.p("b")).st_ino
    renameat2(c.p("a"), c.p("b"), RENAME_EXCHANGE)
    eq_bytes(read_file(c.p("a")), rand_bytes(CHUNK + 5, 11), "a after exchange")
    eq(read_file(c.p("b")), b"content A", "b after exchange")
    eq((os.stat(c.p("a")).st_ino, os.stat(c.p("b")).st_ino), (ib, ia), "st_ino of a and b after exchange")
    os.mkdir(c.p("d"))
    touch(c.p("d", "inside"))
    renameat2(c.p("a"), c.p("d"), RENAME_EXCHANGE)
    true(os.path.isdir(c.p("a")), "a is the dir after exchanging a file with a dir")
    eq(os.listdir(c.p("a")), ["inside"], "the dir's content under its new name")
    eq_bytes(read_file(c.p("d")), rand_bytes(CHUNK + 5, 11), "the file under the dir's old name")
    expect_errno(errno.ENOENT, renameat2, c.p("b"), c.p("missing"), RENAME_EXCHANGE,
                 what="RENAME_EXCHANGE with a missing target")


@check("rename_open_file")
def _c(c):
    """an fd stays attached across rename: writes through it show up under the new name"""
    write_file(c.p("f"), b"0123456789")
    fd = os.open(c.p("f"), os.O_RDWR)
    try:
        os.mkdir(c.p("d"))
        os.rename(c.p("f"), c.p("d", "g"))
        pwrite_all(fd, b"AB", 3)
        pwrite_all(fd, b"tail", CHUNK)
        eq(os.fstat(fd).st_ino, os.stat(c.p("d", "g")).st_ino, "fstat st_ino vs the new name")
    finally:
        os.close(fd)
    got = read_file(c.p("d", "g"))
    eq(got[:10], b"012AB56789", "head written through the fd after rename")
    eq(got[CHUNK:], b"tail", "tail written through the fd after rename")
    eq(len(got), CHUNK + 4, "size")


# ========================================================================================
# hard links

@check("link_nlink")
def _c(c):
    """link() gives a second name: same st_ino, st_nlink 2, shared data; unlink one keeps the data"""
    write_file(c.p("a"), b"shared")
    os.mkdir(c.p("d"))
    os.link(c.p("a"), c.p("d", "b"))
    sa, sb = os.stat(c.p("a")), os.stat(c.p("d", "b"))
    eq(sa.st_ino, sb.st_ino, "st_ino of both names")
    eq((sa.st_nlink, sb.st_nlink), (2, 2), "st_nlink of both names")
    fd = os.open(c.p("d", "b"), os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, b"+more")
    finally:
        os.close(fd)
    eq(read_file(c.p("a")), b"shared+more", "write through one name seen through the other")
    eq(os.stat(c.p("a")).st_size, 11, "size through the other name")
    os.link(c.p("a"), c.p("c"))
    eq(os.stat(c.p("d", "b")).st_nlink, 3, "st_nlink after a third link")
    os.unlink(c.p("a"))
    eq(os.stat(c.p("d", "b")).st_nlink, 2, "st_nlink after unlinking one name")
    os.unlink(c.p("c"))
    st = os.stat(c.p("d", "b"))
    eq(st.st_nlink, 1, "st_nlink after unlinking two names")
    eq(read_file(c.p("d", "b")), b"shared+more", "data under the last name")
    eq(sorted(os.listdir(c.d)), ["d"], "listing")


@check("link_dir_eperm")
def _c(c):
    """link() of a directory -> EPERM"""
    os.mkdir(c.p("d"))
    expect_errno(errno.EPERM, os.link, c.p("d"), c.p("d2"), what="link of a directory")
    expect_missing(c.p("d2"))


@check("link_eexist")
def _c(c):
    """link() onto an existing name -> EEXIST (target unchanged); of a missing file -> ENOENT"""
    write_file(c.p("a"), b"a")
    write_file(c.p("b"), b"b")
    expect_errno(errno.EEXIST, os.link, c.p("a"), c.p("b"), what="link onto an existing file")
    eq(read_file(c.p("b")), b"b", "target after the failed link")
    eq(os.stat(c.p("a")).st_nlink, 1, "source st_nlink after the failed link")
    os.mkdir(c.p("d"))
    expect_errno(errno.EEXIST, os.link, c.p("a"), c.p("d"), what="link onto an existing dir")
    expect_errno(errno.ENOENT, os.link, c.p("missing"), c.p("x"), what="link of a missing file")


# ========================================================================================
