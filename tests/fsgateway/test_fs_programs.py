#!/usr/bin/env python3
"""Real programs on a ringstore-fs mount of a 3-node ring, each checked byte for byte:
  * git: init, 50 commits (adds, edits, deletes, renames), fsck --full, log count, status,
    checkout of an old commit (its tree reproduced exactly), gc + fsck, clone back to local disk;
  * tar: a 10,000-file tree (seeded random contents, 0..8 KiB, nested dirs) extracted onto the
    mount, archived back from it and compared with the original (diff -r, names, modes, mtimes);
  * cp -a: a tree with symlinks, hard links, user.* xattrs, owners, modes and ns mtimes copied
    onto the mount and back; diff -r --no-dereference, hard-link inode sharing, xattrs, metadata;
  * fio: 64 MiB 4k random writes and 64 MiB 1M sequential writes, both verified (crc32c).
Each step's time is logged. RINGSTORE_FS_PROGRAMS picks some of them (comma-separated: git,
tar, cp, fio; default all): ctest runs each as its own test (fs.programs.git and so on)."""

import json
import os
import random
import stat
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_common  # noqa: E402
from fs_common import check, harness, log, run_ok  # noqa: E402

GIT_COMMITS = 50
TAR_FILES = 10_000
TAR_MAX_SIZE = 8192
FIO_SIZE = "64M"
FIO_SIZE_BYTES = 64 << 20


# ---- helpers ----------------------------------------------------------------------------------

def read_tree(root, skip=()):
    """{relative path: bytes} of the regular files under root (symlinks and dirs left out)."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if os.path.relpath(os.path.join(d, x), root) not in skip]
        for f in files:
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)
            if rel in skip:
                continue
            with open(p, "rb") as fh:
                out[rel] = fh.read()
    return out


def describe_tree_diff(want, got, label):
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:5]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[:5]})")
    if differ:
        k = differ[0]
        parts.append(f"{len(differ)} with wrong bytes (e.g. {k}: want {len(want[k])} bytes sha256 "
                     f"{harness.sha256(want[k])[:16]}, got {len(got[k])} bytes sha256 {harness.sha256(got[k])[:16]})")
    return f"{label}: " + "; ".join(parts)


def lstat_tree(root):
    """{relative path: os.stat_result (lstat)} of everything under root, root itself as '.'."""
    out = {".": os.lstat(root)}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def xattrs_of(path):
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)
            if n.startswith("user.")}


def compare_metadata(src, dst, label, check_dir_mtime=True):
    """Fails unless dst mirrors src: the same names, types, modes, owners, sizes, mtimes (ns),
    symlink targets, user.* xattrs, and hard links grouped the same way with the same st_nlink."""
    a, b = lstat_tree(src), lstat_tree(dst)
    check(set(a) == set(b), f"{label}: names differ: missing {sorted(set(a) - set(b))[:10]}, "
                            f"unexpected {sorted(set(b) - set(a))[:10]}")
    problems = []
    for rel in sorted(a):
        sa, sb = a[rel], b[rel]
        pa, pb = os.path.join(src, rel), os.path.join(dst, rel)
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode) or sa.st_mode != sb.st_mode:
            problems.append(f"{rel}: mode {oct(sa.st_mode)} != {oct(sb.st_mode)}")
            continue
        if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            problems.append(f"{rel}: owner {sa.st_uid}:{sa.st_gid} != {sb.st_uid}:{sb.st_gid}")
        is_dir = stat.S_ISDIR(sa.st_mode)
        if not is_dir and sa.st_size != sb.st_size:
            problems.append(f"{rel}: size {sa.st_size} != {sb.st_size}")
        if (not is_dir or check_dir_mtime) and rel != "." and sa.st_mtime_ns != sb.st_mtime_ns:
            problems.append(f"{rel}: mtime_ns {sa.st_mtime_ns} != {sb.st_mtime_ns}")
        if not is_dir and sa.st_nlink != sb.st_nlink:
            problems.append(f"{rel}: st_nlink {sa.st_nlink} != {sb.st_nlink}")
        if stat.S_ISLNK(sa.st_mode):
            if os.readlink(pa) != os.readlink(pb):
                problems.append(f"{rel}: symlink target {os.readlink(pa)!r} != {os.readlink(pb)!r}")
        else:
            xa, xb = xattrs_of(pa), xattrs_of(pb)
            if xa != xb:
                problems.append(f"{rel}: xattrs {xa!r} != {xb!r}")
    # Hard links: the groups of names sharing an inode must be the same.
    def groups(st):
        by_ino = {}
        for rel, s in st.items():
            if not stat.S_ISDIR(s.st_mode):
                by_ino.setdefault((s.st_dev, s.st_ino), []).append(rel)
        return sorted(sorted(g) for g in by_ino.values() if len(g) > 1)
    ga, gb = groups(a), groups(b)
    if ga != gb:
        problems.append(f"hard-link groups differ: {ga} != {gb}")
    check(not problems, f"{label}: {len(problems)} metadata difference(s):\n  " + "\n  ".join(problems[:30]))
    return len(a)


# ---- git --------------------------------------------------------------------------------------

def git_part(ctx, mnt, rng, t):
    home = ctx.mkdtemp("githome-")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LC_ALL": "C",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    repo = os.path.join(mnt, "gitrepo")

    def git(*args, timeout=120, cwd=repo):
        return run_ok(["git", *args], timeout, what=f"git {' '.join(args)} (in {cwd})", env=env, cwd=cwd)

    model = {}  # path -> bytes: what the working tree must hold
    snapshots = []  # (commit sha, model copy) per commit

    def write(rel, data):
        p = os.path.join(repo, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        model[rel] = data

    def text(n):
        return "".join(f"line {rng.randrange(10**9)} {'x' * rng.randrange(0, 60)}\n" for _ in range(n)).encode()

    with t.step("git init + 50 commits"):
        os.mkdir(repo)
        git("init", "-q", "-b", "main", ".")
        git("config", "commit.gpgsign", "false")
        for i in range(GIT_COMMITS):
            # Each commit adds a file, edits one or two, and now and then deletes or renames one.
            write(f"src/d{i % 5}/file{i:03d}.txt", text(rng.randrange(1, 40)))
            for rel in rng.sample(sorted(model), min(len(model), 2)):
                if rng.random() < 0.5:
                    write(rel, model[rel] + text(rng.randrange(1, 10)))  # append
                else:
                    write(rel, text(rng.randrange(1, 30)))  # rewrite
            if i % 10 == 4:
                write(f"bin/blob{i}.bin", rng.randbytes(rng.randrange(50_000, 300_000)))
            if i % 7 == 6 and len(model) > 3:
                rel = rng.choice(sorted(model))
                os.unlink(os.path.join(repo, rel))
                del model[rel]
            if i % 9 == 8 and len(model) > 3:
                rel = rng.choice(sorted(model))
                new = f"renamed/r{i}_{os.path.basename(rel)}"
                os.makedirs(os.path.join(repo, "renamed"), exist_ok=True)
                os.rename(os.path.join(repo, rel), os.path.join(repo, new))
                model[new] = model.pop(rel)
            git("add", "-A")
            git("commit", "-q", "-m", f"commit {i}")
            sha = git("rev-parse", "HEAD").stdout.decode().strip()
            snapshots.append((sha, dict(model)))
    with t.step("git fsck --full, log, status"):
        r = git("fsck", "--full", "--strict", "--no-dangling")
        out = (r.stdout + r.stderr).decode(errors="replace")
        check(not any(w in out.lower() for w in ("error", "missing", "broken", "corrupt", "bad")),
              f"git fsck --full reported problems:\n{out}")
        log_lines = git("log", "--oneline").stdout.decode().splitlines()
        check(len(log_lines) == GIT_COMMITS, f"git log --oneline shows {len(log_lines)} commits, want {GIT_COMMITS}")
        status = git("status", "--porcelain").stdout.decode()
        check(status == "", f"git status after the last commit is not clean:\n{status}")
        got = read_tree(repo, skip={".git"})
        check(got == model, describe_tree_diff(model, got, "working tree after the last commit"))
    old_index = 12
    old_sha, old_model = snapshots[old_index]
    with t.step(f"git checkout of commit {old_index} and back"):
        git("checkout", "-q", old_sha)
        got = read_tree(repo, skip={".git"})
        check(got == old_model, describe_tree_diff(old_model, got, f"working tree at commit {old_index} ({old_sha})"))
        git("checkout", "-q", "main")
        got = read_tree(repo, skip={".git"})
        check(got == model, describe_tree_diff(model, got, "working tree back at main"))
        status = git("status", "--porcelain").stdout.decode()
        check(status == "", f"git status after checking main out again is not clean:\n{status}")
    with t.step("git gc + fsck --full"):
        git("gc", "-q", "--prune=now")
        r = git("fsck", "--full", "--strict", "--no-dangling")
        out = (r.stdout + r.stderr).decode(errors="replace")
        check(not any(w in out.lower() for w in ("error", "missing", "broken", "corrupt", "bad")),
              f"git fsck --full after gc reported problems:\n{out}")
        n = len(git("log", "--oneline").stdout.decode().splitlines())
        check(n == GIT_COMMITS, f"after gc, git log --oneline shows {n} commits, want {GIT_COMMITS}")
    with t.step("git clone from the mount to local disk"):
        local = os.path.join(ctx.mkdtemp("gitclone-"), "clone")
        git("clone", "-q", repo, local, cwd=home)
        head = git("rev-parse", "HEAD", cwd=local).stdout.decode().strip()
        check(head == snapshots[-1][0], f"the clone's HEAD is {head}, want {snapshots[-1][0]}")
        git("fsck", "--full", "--strict", "--no-dangling", cwd=local)
        got = read_tree(local, skip={".git"})
        check(got == model, describe_tree_diff(model, got, "working tree of the local clone"))
    return f"git {GIT_COMMITS} commits"


# ---- tar --------------------------------------------------------------------------------------

def tar_part(ctx, mnt, rng, t):
    work = ctx.mkdtemp("tar-")
    src = os.path.join(work, "src")
    with t.step(f"generate {TAR_FILES} files locally + tar -c"):
        total = 0
        for i in range(TAR_FILES):
            a, b = rng.randrange(10), rng.randrange(10)
            rel = f"d{a}/s{b}/f{i:05d}" if i % 10 else f"d{a}/s{b}/deep/er/f{i:05d}"
            p = os.path.join(src, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            size = rng.randrange(TAR_MAX_SIZE + 1)
            with open(p, "wb") as f:
                f.write(rng.randbytes(size))
            os.chmod(p, rng.choice((0o644, 0o600, 0o755, 0o444)))
            os.utime(p, ns=(1_600_000_000 * 10**9 + i, 1_600_000_000 * 10**9 + i * 1_000_003))
            total += size
        src_tar = os.path.join(work, "src.tar")
        run_ok(["tar", "-cf", src_tar, "-C", src, "."], 120)
        log(f"{TAR_FILES} files, {total} bytes, archive {os.path.getsize(src_tar)} bytes")
    dst = os.path.join(mnt, "tarx")
    os.mkdir(dst)
    with t.step(f"tar -x of {TAR_FILES} files onto the mount"):
        run_ok(["tar", "-xf", src_tar, "-C", dst], 600, what="tar -x onto the mount")
    with t.step("count files on the mount"):
        count = sum(len(files) for _, _, files in os.walk(dst))
        check(count == TAR_FILES, f"the mount holds {count} files after tar -x, want {TAR_FILES}")
    back_tar = os.path.join(work, "back.tar")
    with t.step("tar -c from the mount"):
        run_ok(["tar", "-cf", back_tar, "-C", dst, "."], 600, what="tar -c from the mount")
    with t.step("extract locally + diff -r + compare names, modes, mtimes"):
        names_src = sorted(run_ok(["tar", "-tf", src_tar], 60).stdout.decode().splitlines())
        names_back = sorted(run_ok(["tar", "-tf", back_tar], 60).stdout.decode().splitlines())
        check(names_src == names_back,
              f"tar -t differs: {len(names_src)} names archived, {len(names_back)} archived back; missing "
              f"{sorted(set(names_src) - set(names_back))[:10]}, "
              f"unexpected {sorted(set(names_back) - set(names_src))[:10]}")
        back = os.path.join(work, "back")
        os.mkdir(back)
        run_ok(["tar", "-xf", back_tar, "-C", back], 120)
        r = harness.run_tool(["diff", "-r", src, back], 120)
        check(r.returncode == 0, f"diff -r of the original tree and the one archived back from the mount: "
                                 f"{r.describe()}")
        n_files = sum(len(files) for _, _, files in os.walk(back))
        check(n_files == TAR_FILES, f"the archive made from the mount holds {n_files} files, want {TAR_FILES}")
        bad = []
        a, b = lstat_tree(src), lstat_tree(back)
        for rel, sa in a.items():
            sb = b.get(rel)
            if stat.S_ISREG(sa.st_mode) and (sb is None or sa.st_mode != sb.st_mode or
                                             int(sa.st_mtime) != int(sb.st_mtime)):
                bad.append(f"{rel}: mode {oct(sa.st_mode)} mtime {int(sa.st_mtime)} -> "
                           f"{oct(sb.st_mode) if sb else None} {int(sb.st_mtime) if sb else None}")
        check(not bad, f"{len(bad)} file(s) lost their mode or mtime through the mount: {bad[:10]}")
    return f"tar {TAR_FILES} files"


# ---- cp -a ------------------------------------------------------------------------------------

def make_cp_tree(root, rng):
    os.mkdir(root)
    os.makedirs(os.path.join(root, "a", "deep", "er"))
    os.makedirs(os.path.join(root, "b"))
    os.makedirs(os.path.join(root, "empty"))
    os.makedirs(os.path.join(root, "private"), mode=0o700)
    sizes = {"a/zero": 0, "a/one": 1, "a/page": 4095, "a/deep/er/chunks": (1 << 20) * 2 + 3,
             "b/medium": 70_000, "private/secret": 123, "a/h1": 5000, "a/h2": 9000, "b/exec": 3000}
    for rel, size in sizes.items():
        with open(os.path.join(root, rel), "wb") as f:
            f.write(rng.randbytes(size))
    os.chmod(os.path.join(root, "b/exec"), 0o4755)
    os.chmod(os.path.join(root, "private/secret"), 0o600)
    os.chmod(os.path.join(root, "a/page"), 0o640)
    os.chown(os.path.join(root, "b/medium"), 1000, 1000)
    os.chown(os.path.join(root, "b"), 1234, 4321)
    # Hard links: one in the same directory, one across directories.
    os.link(os.path.join(root, "a/h1"), os.path.join(root, "a/h1.link"))
    os.link(os.path.join(root, "a/h2"), os.path.join(root, "b/h2.link"))
    # Symlinks: relative, absolute, dangling, to a directory, and a long target.
    os.symlink("h1", os.path.join(root, "a/rel.link"))
    os.symlink("/etc/hostname", os.path.join(root, "abs.link"))
    os.symlink("does/not/exist", os.path.join(root, "b/dangling"))
    os.symlink("../a/deep", os.path.join(root, "b/dir.link"))
    os.symlink("x" * 1000, os.path.join(root, "long.link"))
    # user.* xattrs: text, empty, binary with NULs, large, on a directory, on a hard-linked file.
    os.setxattr(os.path.join(root, "a/one"), "user.text", b"hello")
    os.setxattr(os.path.join(root, "a/one"), "user.empty", b"")
    os.setxattr(os.path.join(root, "a/zero"), "user.binary", bytes(range(256)) + b"\0\0end")
    os.setxattr(os.path.join(root, "b/medium"), "user.large", rng.randbytes(3000))
    os.setxattr(os.path.join(root, "a/deep"), "user.dir", b"on a directory")
    os.setxattr(os.path.join(root, "a/h1"), "user.linked", b"shared by two names")
    # Timestamps with nanoseconds, on files, directories and symlinks (dirs last: children
    # were created in them above).
    for i, (rel, st) in enumerate(sorted(lstat_tree(root).items(), key=lambda kv: -kv[0].count("/"))):
        t_ns = 1_500_000_000 * 10**9 + i * 1_000_000_007 + rng.randrange(10**9)
        os.utime(os.path.join(root, rel), ns=(t_ns, t_ns), follow_symlinks=False)


def cp_part(ctx, mnt, rng, t):
    work = ctx.mkdtemp("cp-")
    src = os.path.join(work, "src")
    make_cp_tree(src, rng)
    dst = os.path.join(mnt, "cp")
    with t.step("cp -a onto the mount + diff + metadata"):
        run_ok(["cp", "-a", src, dst], 120, what="cp -a onto the mount")
        r = harness.run_tool(["diff", "-r", "--no-dereference", src, dst], 120)
        check(r.returncode == 0, f"diff -r --no-dereference of the tree and its copy on the mount: {r.describe()}")
        for x, y in (("a/h1", "a/h1.link"), ("a/h2", "b/h2.link")):
            sx, sy = os.lstat(os.path.join(dst, x)), os.lstat(os.path.join(dst, y))
            check(sx.st_ino == sy.st_ino, f"on the mount, hard links {x} and {y} have different inodes "
                                          f"({sx.st_ino}, {sy.st_ino})")
            check(sx.st_nlink == 2 and sy.st_nlink == 2,
                  f"on the mount, hard links {x}, {y} have st_nlink {sx.st_nlink}, {sy.st_nlink}, want 2")
        got = os.getxattr(os.path.join(dst, "a/h1.link"), "user.linked")
        check(got == b"shared by two names", f"xattr through the second hard link reads {got!r}")
        n = compare_metadata(src, dst, "cp -a onto the mount")
        # Writing through one hard link shows through the other.
        with open(os.path.join(dst, "a/h2"), "r+b") as f:
            f.seek(100)
            f.write(b"THROUGH-LINK")
        with open(os.path.join(dst, "b/h2.link"), "rb") as f:
            f.seek(100)
            got = f.read(12)
        check(got == b"THROUGH-LINK", f"write through a/h2 reads back through b/h2.link as {got!r}")
        with open(os.path.join(src, "a/h2"), "r+b") as f:  # keep the source equal for the trip back
            f.seek(100)
            f.write(b"THROUGH-LINK")
        for rel in ("a/h2", "b/h2.link"):  # restore the mtime the write changed
            st = os.lstat(os.path.join(src, rel))
            os.utime(os.path.join(dst, rel), ns=(st.st_atime_ns, st.st_mtime_ns))
    back = os.path.join(work, "back")
    with t.step("cp -a back to local disk + diff + metadata"):
        run_ok(["cp", "-a", dst, back], 120, what="cp -a from the mount")
        r = harness.run_tool(["diff", "-r", "--no-dereference", src, back], 120)
        check(r.returncode == 0, f"diff -r --no-dereference of the tree and its round trip: {r.describe()}")
        compare_metadata(src, back, "cp -a onto the mount and back")
    return f"cp -a {n} entries"


# ---- fio --------------------------------------------------------------------------------------

def fio_part(ctx, mnt, t):
    results = []
    for name, rw, bs in (("randwrite-4k", "randwrite", "4k"), ("write-1M", "write", "1M")):
        d = os.path.join(mnt, f"fio-{name}")
        os.mkdir(d)
        with t.step(f"fio {name} {FIO_SIZE} verify=crc32c"):
            r = harness.run_tool(["fio", "--name=verify", f"--directory={d}", f"--rw={rw}", f"--bs={bs}",
                                  f"--size={FIO_SIZE}", "--verify=crc32c", "--do_verify=1", "--ioengine=psync",
                                  "--verify_fatal=1", "--verify_state_save=0", "--output-format=json"], 600,
                                 cwd=ctx.scratch)  # fio may leave files in its working directory
            check(r.returncode == 0, f"fio {name} failed: {r.describe()}")
            try:
                report = json.loads(r.stdout.decode(errors="replace")[r.stdout.find(b"{"):])
            except ValueError as e:
                raise harness.TestFailure(f"fio {name}: cannot parse its JSON output ({e}): {r.describe()}")
            job = report["jobs"][0]
            err = r.stderr.decode(errors="replace")
            check(job["error"] == 0, f"fio {name}: job error {job['error']}; stderr {err!r}")
            check("verify" not in err.lower() and "bad" not in err.lower(),
                  f"fio {name} reported verify problems: {err!r}")
            wrote, read = job["write"]["io_bytes"], job["read"]["io_bytes"]
            check(wrote == FIO_SIZE_BYTES, f"fio {name} wrote {wrote} bytes, want {FIO_SIZE_BYTES}")
            check(read == FIO_SIZE_BYTES, f"fio {name} verified (read back) {read} bytes, want {FIO_SIZE_BYTES}")
            mb_s = job["write"]["bw_bytes"] / 1e6
            log(f"fio {name}: wrote {wrote} bytes at {mb_s:.1f} MB/s, verified {read} bytes, no errors")
            results.append(f"{name} {mb_s:.1f} MB/s")
    return "fio " + ", ".join(results)


def test(ctx, args):
    fs_common.require_fuse()
    fs_common.need_tools("git", "tar", "fio", "diff", "cp")
    programs = ("git", "tar", "cp", "fio")
    chosen = [p.strip() for p in os.environ.get("RINGSTORE_FS_PROGRAMS", ",".join(programs)).split(",") if p.strip()]
    unknown = [p for p in chosen if p not in programs]
    check(chosen and not unknown, f"RINGSTORE_FS_PROGRAMS: unknown or no program(s) {unknown}; choose from {programs}")
    ring = fs_common.cluster_with_fs(ctx)
    gw = fs_common.mount(ctx, ring)
    mnt = gw.mountpoint
    rng = random.Random(args.seed)
    t = fs_common.Timings()
    # Every part runs even when an earlier one failed (each in its own directory), so that one
    # problem does not hide the others; the test fails at the end if any did.
    parts, failures = [], []
    for name, part in (("git", lambda: git_part(ctx, mnt, rng, t)), ("tar", lambda: tar_part(ctx, mnt, rng, t)),
                       ("cp", lambda: cp_part(ctx, mnt, rng, t)), ("fio", lambda: fio_part(ctx, mnt, t))):
        if name not in chosen:
            continue
        try:
            parts.append(part())
        except harness.TestFailure as e:
            log(f"FAIL {name}: {e}")
            failures.append(f"{name}: {e}")
    log("timings: " + t.summary())
    check(not failures, f"{len(failures)} of {len(chosen)} program runs failed:\n" + "\n".join(failures))
    rc = gw.stop()
    check(rc == 0, f"ringstore-fs exited {rc} on SIGTERM")
    check(not gw.mounted(), f"{mnt} still mounted after ringstore-fs exited")
    return "; ".join(parts) + f" (steps: {t.summary()})"


if __name__ == "__main__":
    harness.run(test, "test_fs_programs", __doc__)
