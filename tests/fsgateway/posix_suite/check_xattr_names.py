"""POSIX checks: extended attributes, names and paths. Registered on import (posix_suite/base.py)."""

from posix_suite.base import *  # noqa: F401,F403 - the checks' shared vocabulary


# extended attributes


@check("xattr_roundtrip")
def _c(c):
    """set/get/list/remove user.* xattrs on a file and a dir (empty and binary values, overwrite)"""
    f = c.p("f")
    write_file(f, b"x")
    setxattr_first(f, "user.a", b"1")
    os.setxattr(f, "user.empty", b"")
    os.setxattr(f, "user.bin", b"\x00\xff\x00binary\n")
    eq(os.getxattr(f, "user.a"), b"1", "user.a")
    eq(os.getxattr(f, "user.empty"), b"", "user.empty")
    eq(os.getxattr(f, "user.bin"), b"\x00\xff\x00binary\n", "user.bin")
    eq(user_xattrs(f), ["user.a", "user.bin", "user.empty"], "listxattr (user.*)")
    os.setxattr(f, "user.a", b"second value")
    eq(os.getxattr(f, "user.a"), b"second value", "user.a after overwrite")
    os.removexattr(f, "user.a")
    eq(user_xattrs(f), ["user.bin", "user.empty"], "listxattr after removexattr")
    expect_errno(ENODATA, os.getxattr, f, "user.a", what="getxattr of a removed name")
    eq(read_file(f), b"x", "file data untouched by xattrs")
    os.mkdir(c.p("d"))
    os.setxattr(c.p("d"), "user.dir", b"on a dir")
    eq(os.getxattr(c.p("d"), "user.dir"), b"on a dir", "xattr on a directory")
    eq(user_xattrs(c.p("d")), ["user.dir"], "listxattr of the directory")


@check("xattr_create_eexist")
def _c(c):
    """setxattr(XATTR_CREATE) on an existing name -> EEXIST, value unchanged"""
    f = c.p("f")
    write_file(f, b"x")
    setxattr_first(f, "user.k", b"v1")
    expect_errno(errno.EEXIST, os.setxattr, f, "user.k", b"v2", os.XATTR_CREATE,
                 what="setxattr(XATTR_CREATE) on an existing name")
    eq(os.getxattr(f, "user.k"), b"v1", "value after the refused XATTR_CREATE")
    os.setxattr(f, "user.new", b"n", os.XATTR_CREATE)
    eq(os.getxattr(f, "user.new"), b"n", "XATTR_CREATE of a new name")


@check("xattr_replace_enodata")
def _c(c):
    """setxattr(XATTR_REPLACE) on a missing name -> ENODATA; on an existing one replaces"""
    f = c.p("f")
    write_file(f, b"x")
    setxattr_first(f, "user.there", b"old")
    expect_errno(ENODATA, os.setxattr, f, "user.missing", b"v", os.XATTR_REPLACE,
                 what="setxattr(XATTR_REPLACE) on a missing name")
    eq(user_xattrs(f), ["user.there"], "names after the refused XATTR_REPLACE")
    os.setxattr(f, "user.there", b"new", os.XATTR_REPLACE)
    eq(os.getxattr(f, "user.there"), b"new", "value after XATTR_REPLACE")


@check("xattr_get_missing_enodata")
def _c(c):
    """getxattr of a missing name -> ENODATA"""
    f = c.p("f")
    write_file(f, b"x")
    setxattr_first(f, "user.other", b"o")
    expect_errno(ENODATA, os.getxattr, f, "user.missing", what="getxattr of a missing name")


@check("xattr_remove_missing_enodata")
def _c(c):
    """removexattr of a missing name -> ENODATA"""
    f = c.p("f")
    write_file(f, b"x")
    setxattr_first(f, "user.other", b"o")
    expect_errno(ENODATA, os.removexattr, f, "user.missing", what="removexattr of a missing name")
    eq(os.getxattr(f, "user.other"), b"o", "the other xattr")


@check("xattr_large_value")
def _c(c):
    """a 4000-byte xattr value round trips"""
    f = c.p("f")
    write_file(f, b"x")
    v = rand_bytes(4000, 12)
    setxattr_first(f, "user.big", v)
    eq_bytes(os.getxattr(f, "user.big"), v, "4000-byte xattr value")


@check("xattr_follows_inode")
def _c(c):
    """xattrs stay with the inode: kept across rename, shared by hard links"""
    f = c.p("f")
    write_file(f, b"x")
    setxattr_first(f, "user.k", b"kept")
    os.rename(f, c.p("g"))
    eq(os.getxattr(c.p("g"), "user.k"), b"kept", "xattr after rename")
    os.link(c.p("g"), c.p("h"))
    os.setxattr(c.p("h"), "user.via_h", b"h")
    eq(os.getxattr(c.p("g"), "user.via_h"), b"h", "xattr set through one hard link, read through the other")
    eq(user_xattrs(c.p("g")), ["user.k", "user.via_h"], "listxattr through the other link")


# ========================================================================================
# names and paths

@check("name_max")
def _c(c):
    """a 255-byte name works for files and dirs (create, list, stat, read, rename, unlink)"""
    n1, n2, nd = "a" * 255, "b" * 254 + "c", "d" * 255
    write_file(c.p(n1), b"long name")
    os.mkdir(c.p(nd))
    eq(sorted(os.listdir(c.d)), sorted([n1, nd]), "listing with 255-byte names")
    eq(read_file(c.p(n1)), b"long name", "content of the 255-byte-named file")
    os.rename(c.p(n1), c.p(nd, n2))
    eq(os.listdir(c.p(nd)), [n2], "listing after rename between 255-byte names")
    eq(read_file(c.p(nd, n2)), b"long name", "content after the rename")
    u = "\u00e9" * 127 + "x"  # 255 bytes of UTF-8
    eq(len(u.encode()), 255, "test name length")
    write_file(c.p(u), b"utf8")
    eq(read_file(c.p(u)), b"utf8", "255-byte UTF-8 name")
    os.unlink(c.p(nd, n2))
    os.unlink(c.p(u))
    os.rmdir(c.p(nd))
    eq(os.listdir(c.d), [], "listing after removing them")


@check("name_too_long")
def _c(c):
    """a 256-byte name -> ENAMETOOLONG (open O_CREAT, mkdir, stat, symlink, rename, link)"""
    n = c.p("x" * 256)
    write_file(c.p("f"), b"x")
    E = errno.ENAMETOOLONG
    expect_errno(E, os.open, n, os.O_WRONLY | os.O_CREAT, 0o644, what="O_CREAT with a 256-byte name")
    expect_errno(E, os.mkdir, n, what="mkdir with a 256-byte name")
    expect_errno(E, os.stat, n, what="stat with a 256-byte name")
    expect_errno(E, os.symlink, "f", n, what="symlink with a 256-byte name")
    expect_errno(E, os.rename, c.p("f"), n, what="rename to a 256-byte name")
    expect_errno(E, os.link, c.p("f"), n, what="link to a 256-byte name")
    eq(os.listdir(c.d), ["f"], "listing")


@check("names_special")
def _c(c):
    """names with spaces, newlines, tabs, UTF-8, non-UTF-8 bytes, backslash, leading dash, '...'"""
    names = [b"with space", b"new\nline", b"tab\tname", "\u00fcn\u00efc\u00f6d\u00e9-\u65e5\u672c".encode(),
             b"\xff\xfe-not-utf8", b"back\\slash", b"-leading-dash", b"...", b" ", b"colon:star*q?",
             b"\x01\x1f-ctl", b"'quote\"", b"%s%n"]
    bd = os.fsencode(c.d)
    for n in names:
        write_file(os.path.join(bd, n), n)
    got = os.listdir(bd)
    eq(sorted(got), sorted(names), "listing (bytes)")
    for n in names:
        eq(read_file(os.path.join(bd, n)), n, f"content of {n!r}")
    for n in names:
        os.rename(os.path.join(bd, n), os.path.join(bd, n + b".r"))
    eq(sorted(os.listdir(bd)), sorted(n + b".r" for n in names), "listing after renaming each")
    for n in names:
        os.unlink(os.path.join(bd, n + b".r"))
    eq(os.listdir(bd), [], "listing after unlinking each")


def _make_chain(top_fd, names):
    """mkdir a chain of nested dirs under top_fd walking with dir fds; returns the bottom fd."""
    fd = os.dup(top_fd)
    for n in names:
        os.mkdir(n, dir_fd=fd)
        nfd = os.open(n, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


@check("deep_tree")
def _c(c):
    """60 nested 60-char dirs (3660-byte relative path): a file at the bottom, opened by relative path"""
    names = [f"{i:02d}" + "d" * 58 for i in range(60)]
    top = os.open(c.d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        bottom = _make_chain(top, names)
        try:
            fd = os.open("leaf", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=bottom)
            try:
                write_all(fd, b"at the bottom")
            finally:
                os.close(fd)
            eq(os.listdir(bottom), ["leaf"], "listing of the bottom dir")
        finally:
            os.close(bottom)
        rel = "/".join(names + ["leaf"])
        true(len(rel) > 3000, "relative path length")
        fd = os.open(rel, os.O_RDONLY, dir_fd=top)
        try:
            eq(read_all(fd), b"at the bottom", f"read through the {len(rel)}-byte relative path")
        finally:
            os.close(fd)
        eq(os.stat(rel, dir_fd=top).st_size, 13, "stat through the long relative path")
        os.rename(names[0], "renamed", src_dir_fd=top, dst_dir_fd=top)
        rel2 = "/".join(["renamed"] + names[1:] + ["leaf"])
        fd = os.open(rel2, os.O_RDONLY, dir_fd=top)
        try:
            eq(read_all(fd), b"at the bottom", "read after renaming the top of the chain")
        finally:
            os.close(fd)
    finally:
        os.close(top)


@check("path_max")
def _c(c):
    """a 4095-byte relative path (63 dirs of 63 chars + a 63-char file) works; 4096 bytes -> ENAMETOOLONG"""
    names = [f"{i:02d}" + "p" * 61 for i in range(63)]
    top = os.open(c.d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(_make_chain(top, names))
        leaf = "L" * 63
        rel = "/".join(names + [leaf])
        eq(len(rel), 4095, "test path length")
        fd = os.open(rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=top)
        try:
            write_all(fd, b"PATH_MAX - 1")
        finally:
            os.close(fd)
        fd = os.open(rel, os.O_RDONLY, dir_fd=top)
        try:
            eq(read_all(fd), b"PATH_MAX - 1", "read through the 4095-byte path")
        finally:
            os.close(fd)
        longer = rel.replace("/", "//", 1)
        eq(len(longer), 4096, "test path length")
        expect_errno(errno.ENAMETOOLONG, os.open, longer, os.O_RDONLY, dir_fd=top,
                     what="open of a 4096-byte path")
    finally:
        os.close(top)


# ========================================================================================
