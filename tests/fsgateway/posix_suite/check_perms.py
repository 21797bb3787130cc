"""POSIX checks: permissions as a non-root user (forked child). Registered on import (posix_suite/base.py)."""

from posix_suite.base import *  # noqa: F401,F403 - the checks' shared vocabulary


# permissions as a non-root user (forked child)

def _try(fn, *a, **kw):
    """In the child: run fn, return 'ok' (or the value for reads) or the errno name."""
    try:
        r = fn(*a, **kw)
    except OSError as e:
        return ename(e.errno)
    if fn is os.open and isinstance(r, int):
        os.close(r)
        return "ok"
    return r if isinstance(r, str) else "ok"


def _read_at(dfd, name):
    fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
    try:
        return read_all(fd).decode()
    finally:
        os.close(fd)


def run_as_nonroot(c, fn):
    """Runs fn(dir_fd) in a forked child with uid/gid dropped to c.nonroot_uid; returns its
    JSON-able result. The child reaches the check dir through a dir fd opened here, so the
    permissions of the directories above it (a 0700 mkdtemp parent) do not matter."""
    if os.geteuid() != 0:
        skip("needs root to switch to a non-root uid")
    uid = c.nonroot_uid
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        gid = uid
    dfd = os.open(c.d, os.O_RDONLY | os.O_DIRECTORY)
    r, w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # child: never returns
            code = 0
            try:
                os.close(r)
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
                out = {"ok": True, "res": fn(dfd)}
            except BaseException as e:  # noqa: BLE001 - report anything to the parent
                out = {"ok": False, "err": f"{type(e).__name__}: {e}",
                       "tb": traceback.format_exc(limit=3)}
            try:
                os.write(w, json.dumps(out).encode())
            except BaseException:  # noqa: BLE001
                code = 1
            os._exit(code)
        os.close(w)
        w = -1
        chunks = []
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            chunks.append(b)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        os.close(dfd)
    if not chunks:
        fail(f"non-root child produced no result (wait status {status})")
    out = json.loads(b"".join(chunks))
    if not out["ok"]:
        fail(f"non-root child raised {out['err']}")
    return out["res"]


def _expect_outcomes(got, want, who):
    for k, v in want.items():
        if got.get(k) != v:
            fail(f"{who}: {k} gave {got.get(k)!r}, expected {v!r} (all results: {got})")


@check("access")
def _c(c):
    """access(2)/faccessat: R_OK, W_OK, X_OK and F_OK as root and as a non-root user, on files
    and a directory, by their mode bits; ENOENT for a missing name"""
    for name, mode in (("r", 0o644), ("x", 0o755), ("none", 0o000), ("group", 0o640)):
        write_file(c.p(name), b"a")
        os.chmod(c.p(name), mode)
    os.mkdir(c.p("dir"), 0o711)
    os.chmod(c.p("dir"), 0o711)

    def probe(dfd):
        out = {}
        for name in ("r", "x", "none", "group", "dir", "missing"):
            for tag, m in (("F", os.F_OK), ("R", os.R_OK), ("W", os.W_OK), ("X", os.X_OK)):
                out[f"{name}.{tag}"] = os.access(name, m, dir_fd=dfd)
        return out
    dfd = os.open(c.d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        as_root = probe(dfd)
    finally:
        os.close(dfd)
    # Root may read and write anything, and execute what has an x bit for someone.
    want_root = {"r.F": True, "r.R": True, "r.W": True, "r.X": False,
                 "x.X": True, "none.R": True, "none.W": True, "none.X": False,
                 "dir.R": True, "dir.W": True, "dir.X": True,
                 "missing.F": False, "missing.R": False}
    _expect_outcomes(as_root, want_root, "access() as root")
    got = run_as_nonroot(c, probe)
    want_user = {"r.F": True, "r.R": True, "r.W": False, "r.X": False,
                 "x.R": True, "x.W": False, "x.X": True,
                 "none.F": True, "none.R": False, "none.W": False, "none.X": False,
                 "group.R": False, "group.W": False,
                 "dir.F": True, "dir.R": False, "dir.W": False, "dir.X": True,
                 "missing.F": False}
    _expect_outcomes(got, want_user, "access() as a non-root user")
    eq(_try(os.stat, c.p("missing")), "ENOENT", "stat of the missing name")


@check("perm_read_0600_eacces")
def _c(c):
    """a non-root user cannot read or write a root-owned 0600 file -> EACCES"""
    write_file(c.p("secret"), b"s", mode=0o600)
    os.chmod(c.p("secret"), 0o600)
    got = run_as_nonroot(c, lambda dfd: {
        "read": _try(os.open, "secret", os.O_RDONLY, dir_fd=dfd),
        "write": _try(os.open, "secret", os.O_WRONLY, dir_fd=dfd),
        "stat": _try(os.stat, "secret", dir_fd=dfd)})
    _expect_outcomes(got, {"read": "EACCES", "write": "EACCES", "stat": "ok"}, "non-root on a 0600 root file")


@check("perm_write_dir_0755_eacces")
def _c(c):
    """a non-root user cannot create, mkdir, unlink, rename or symlink in a root-owned 0755 dir -> EACCES"""
    os.mkdir(c.p("d"), 0o755)
    os.chmod(c.p("d"), 0o755)
    write_file(c.p("d", "existing"), b"e", mode=0o666)
    os.chmod(c.p("d", "existing"), 0o666)
    got = run_as_nonroot(c, lambda dfd: {
        "create": _try(os.open, "d/new", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd),
        "mkdir": _try(os.mkdir, "d/sub", dir_fd=dfd),
        "unlink": _try(os.unlink, "d/existing", dir_fd=dfd),
        "rename": _try(os.rename, "d/existing", "d/moved", src_dir_fd=dfd, dst_dir_fd=dfd),
        "symlink": _try(os.symlink, "x", "d/link", dir_fd=dfd),
        "write_0666_file": _try(os.open, "d/existing", os.O_WRONLY, dir_fd=dfd)})
    _expect_outcomes(got, {"create": "EACCES", "mkdir": "EACCES", "unlink": "EACCES",
                           "rename": "EACCES", "symlink": "EACCES", "write_0666_file": "ok"},
                     "non-root in a 0755 root dir")
    eq(sorted(os.listdir(c.p("d"))), ["existing"], "the dir's listing after the refused calls")


@check("perm_read_0644_ok")
def _c(c):
    """a non-root user can read a root-owned 0644 file but not write it (EACCES)"""
    write_file(c.p("pub"), b"public data", mode=0o644)
    os.chmod(c.p("pub"), 0o644)
    got = run_as_nonroot(c, lambda dfd: {
        "read": _try(_read_at, dfd, "pub"),
        "write": _try(os.open, "pub", os.O_WRONLY, dir_fd=dfd),
        "truncate": _try(os.open, "pub", os.O_WRONLY | os.O_TRUNC, dir_fd=dfd)})
    _expect_outcomes(got, {"read": "public data", "write": "EACCES", "truncate": "EACCES"},
                     "non-root on a 0644 root file")
    eq(read_file(c.p("pub")), b"public data", "content after the refused writes")


@check("perm_search_dir_0700")
def _c(c):
    """a non-root user cannot list or look up inside a root-owned 0700 dir -> EACCES"""
    os.mkdir(c.p("priv"), 0o700)
    os.chmod(c.p("priv"), 0o700)
    write_file(c.p("priv", "f"), b"f", mode=0o644)
    got = run_as_nonroot(c, lambda dfd: {
        "list": _try(os.open, "priv", os.O_RDONLY | os.O_DIRECTORY, dir_fd=dfd),
        "stat_inside": _try(os.stat, "priv/f", dir_fd=dfd),
        "open_inside": _try(os.open, "priv/f", os.O_RDONLY, dir_fd=dfd)})
    _expect_outcomes(got, {"list": "EACCES", "stat_inside": "EACCES", "open_inside": "EACCES"},
                     "non-root on a 0700 root dir")


@check("perm_not_owner_eperm")
def _c(c):
    """a non-owner cannot chmod/chown/set times (EPERM), touch (EACCES) or set user xattrs (EACCES)"""
    write_file(c.p("f"), b"f", mode=0o644)
    os.chmod(c.p("f"), 0o644)
    setxattr_first(c.p("f"), "user.r", b"readable")

    def child(dfd):
        fd = os.open("f", os.O_RDONLY, dir_fd=dfd)
        try:
            xattr = {"getxattr": _try(lambda: os.getxattr(fd, "user.r").decode()),
                     "setxattr": _try(os.setxattr, fd, "user.x", b"1")}
        finally:
            os.close(fd)
        return dict(xattr,
                    chmod=_try(os.chmod, "f", 0o666, dir_fd=dfd),
                    chown=_try(os.chown, "f", c.nonroot_uid, -1, dir_fd=dfd),
                    utime_explicit=_try(os.utime, "f", ns=(1, 1), dir_fd=dfd),
                    utime_now=_try(os.utime, "f", dir_fd=dfd))
    got = run_as_nonroot(c, child)
    _expect_outcomes(got, {"chmod": "EPERM", "chown": "EPERM", "utime_explicit": "EPERM",
                           "utime_now": "EACCES", "getxattr": "readable", "setxattr": "EACCES"},
                     "non-owner on a 0644 root file")
    eq(user_xattrs(c.p("f")), ["user.r"], "xattrs after the refused setxattr")
    eq_mode(stat.S_IMODE(os.stat(c.p("f")).st_mode), 0o644, "mode after the refused chmod")


@check("perm_nonroot_create_owner")
def _c(c):
    """files and dirs a non-root user creates in a 0777 dir belong to its uid/gid; it can chmod them"""
    os.mkdir(c.p("pub"))
    os.chmod(c.p("pub"), 0o777)

    def child(dfd):
        fd = os.open("pub/mine", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd)
        write_all(fd, b"mine")
        os.close(fd)
        os.mkdir("pub/mydir", dir_fd=dfd)
        return {"chmod": _try(os.chmod, "pub/mine", 0o600, dir_fd=dfd),
                "read": _try(_read_at, dfd, "pub/mine")}
    got = run_as_nonroot(c, child)
    _expect_outcomes(got, {"chmod": "ok", "read": "mine"}, "non-root in its own files")
    try:
        gid = pwd.getpwuid(c.nonroot_uid).pw_gid
    except KeyError:
        gid = c.nonroot_uid
    for n, m in (("mine", 0o600), ("mydir", None)):
        st = os.stat(c.p("pub", n))
        eq((st.st_uid, st.st_gid), (c.nonroot_uid, gid), f"owner of {n} created by the non-root user")
        if m is not None:
            eq_mode(stat.S_IMODE(st.st_mode), m, f"mode of {n} after the user's chmod")


@check("perm_sticky_dir")
def _c(c):
    """in a 1777 dir a non-root user cannot unlink or rename root's file (EPERM) but can its own"""
    os.mkdir(c.p("tmp"))
    os.chmod(c.p("tmp"), 0o1777)
    write_file(c.p("tmp", "roots"), b"r", mode=0o666)
    os.chmod(c.p("tmp", "roots"), 0o666)

    def child(dfd):
        fd = os.open("tmp/own", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd)
        os.close(fd)
        return {"unlink_roots": _try(os.unlink, "tmp/roots", dir_fd=dfd),
                "rename_roots": _try(os.rename, "tmp/roots", "tmp/x", src_dir_fd=dfd, dst_dir_fd=dfd),
                "unlink_own": _try(os.unlink, "tmp/own", dir_fd=dfd)}
    got = run_as_nonroot(c, child)
    _expect_outcomes(got, {"unlink_roots": "EPERM", "rename_roots": "EPERM", "unlink_own": "ok"},
                     "non-root in a sticky dir")
    eq(os.listdir(c.p("tmp")), ["roots"], "sticky dir listing")


# ========================================================================================
