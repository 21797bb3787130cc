#!/usr/bin/env python3
"""Two mounts (two ringstore-fs processes) of one filesystem of a 3-node ring:
  * close-to-open: a file rewritten (longer, shorter, same size) or appended to and closed on
    mount A reads back with exactly the new bytes on mount B on the next open, at once, even
    though B had just read and stat'ed the old version;
  * visibility: append, chmod, create, mkdir, rename and unlink on A show on B within 1 s
    (--attr-ttl 1) without remounting; a change seen later than 1 s fails the test (B polls
    on up to 1.5 s to report how late), both right after the change and after first looking
    0.8 s later;
  * no lost updates: A appends/chmods/sets an xattr, then B (which had just stat'ed the file)
    chmods/sets an xattr/sets the mtime; after attr_ttl both mounts show both changes;
  * concurrent creates: one process per mount creates 1,000 files in one directory at the
    same time; both mounts then list all 2,000 names (within 2 s) and read the right bytes;
    then both make 25 subdirectories each at the same time, and the directory's st_nlink must
    count all 50."""

import os
import stat
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_common  # noqa: E402
from fs_common import check, harness, log  # noqa: E402

VISIBLE_WITHIN_S = 1.0    # what --attr-ttl 1 promises
POLL_DEADLINE_S = 1.5     # how long B polls (a change seen after VISIBLE_WITHIN_S fails anyway)
POLL_INTERVAL_S = 0.005
LATE_LOOK_S = 0.8         # the "late reader": B first looks this long after the change
FILES_PER_WRITER = 1000
DIRS_PER_WRITER = 25
LISTING_SETTLE_S = 2.0


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def exists(path):
    try:
        os.lstat(path)
        return True
    except FileNotFoundError:
        return False


def poll(pred, t0, deadline=POLL_DEADLINE_S):
    """Seconds from t0 until pred() first held, or None if it did not within the deadline."""
    while True:
        try:
            ok = pred()
        except FileNotFoundError:
            ok = False
        now = time.monotonic()
        if ok:
            return now - t0
        if now - t0 > deadline:
            return None
        time.sleep(POLL_INTERVAL_S)


def wait_visible(path, what):
    t0 = time.monotonic()
    lat = poll(lambda: exists(path), t0)
    check(lat is not None, f"{what}: {path} did not appear within {POLL_DEADLINE_S}s")
    return lat


# ---- close-to-open --------------------------------------------------------------------------

def close_to_open(a, b):
    """A file changed and closed on A reads back with the new bytes on B's next open."""
    os.mkdir(os.path.join(a, "cto"))
    cases = [
        ("rewrite longer", b"old-10byte", lambda p: write(p, b"NEW" * 10), b"NEW" * 10),
        ("rewrite shorter", b"old-content-of-30-bytes-......", lambda p: write(p, b"short"), b"short"),
        ("rewrite same size", b"0123456789", lambda p: write(p, b"abcdefghij"), b"abcdefghij"),
        ("append", b"first part|", lambda p: write(p, b"appended part", "ab"), b"first part|appended part"),
        ("truncate to 0", b"will be gone", lambda p: os.truncate(p, 0), b""),
        ("rewrite 3 MiB over 1 MiB", bytes(range(256)) * 4096, lambda p: write(p, b"\x5a" * (3 << 20)),
         b"\x5a" * (3 << 20)),
    ]
    failures = []
    for i, (what, before, change, after) in enumerate(cases):
        rel = f"cto/f{i}"
        pa, pb = os.path.join(a, rel), os.path.join(b, rel)
        write(pa, before)
        wait_visible(pb, f"close-to-open '{what}' setup")
        # B reads and stats the old version, as a reader that had the file open before would.
        got = read(pb)
        check(got == before, f"close-to-open '{what}': B read the original version as {len(got)} bytes "
                             f"{got[:40]!r}, want {len(before)} bytes {before[:40]!r}")
        os.stat(pb)
        change(pa)  # closed (or truncated by path) when this returns
        got = read(pb)
        size_b = os.stat(pb).st_size
        if got != after:
            failures.append(f"{what}: after A closed the file, B's next open+read returned {len(got)} bytes "
                            f"{got[:40]!r}, want {len(after)} bytes {after[:40]!r} (B's stat then says size "
                            f"{size_b})")
            log(f"close-to-open FAIL {what}: B read {len(got)} bytes, want {len(after)}")
        else:
            log(f"close-to-open ok {what}: B read the {len(after)} new bytes at once")
    return failures


# ---- visibility within attr_ttl -----------------------------------------------------------

def visibility(a, b, late):
    """Each change on A must show on B within VISIBLE_WITHIN_S (B polls up to POLL_DEADLINE_S).
    late: B does not look between its warm-up and LATE_LOOK_S after the change."""
    tag = "late" if late else "eager"
    base = f"vis-{tag}"
    os.mkdir(os.path.join(a, base))
    da, db = os.path.join(a, base), os.path.join(b, base)
    write(os.path.join(da, "app"), b"x" * 100)
    write(os.path.join(da, "mode"), b"m")
    os.chmod(os.path.join(da, "mode"), 0o644)
    write(os.path.join(da, "ren-old"), b"renamed bytes")
    write(os.path.join(da, "gone"), b"to be unlinked")
    wait_visible(os.path.join(db, "gone"), f"visibility ({tag}) setup")

    def has(name):
        return lambda: exists(os.path.join(db, name)) and name in os.listdir(db)

    def lacks(name):
        return lambda: not exists(os.path.join(db, name)) and name not in os.listdir(db)

    ops = [
        ("append", lambda: write(os.path.join(da, "app"), b"y" * 50, "ab"),
         lambda: os.stat(os.path.join(db, "app")).st_size == 150),
        ("chmod", lambda: os.chmod(os.path.join(da, "mode"), 0o600),
         lambda: stat.S_IMODE(os.stat(os.path.join(db, "mode")).st_mode) == 0o600),
        ("create", lambda: write(os.path.join(da, "new"), b"created"),
         lambda: has("new")() and read(os.path.join(db, "new")) == b"created"),
        ("mkdir", lambda: os.mkdir(os.path.join(da, "subdir")),
         lambda: has("subdir")() and stat.S_ISDIR(os.stat(os.path.join(db, "subdir")).st_mode)),
        ("rename", lambda: os.rename(os.path.join(da, "ren-old"), os.path.join(da, "ren-new")),
         lambda: lacks("ren-old")() and has("ren-new")() and read(os.path.join(db, "ren-new")) == b"renamed bytes"),
        ("unlink", lambda: os.unlink(os.path.join(da, "gone")), lacks("gone")),
    ]
    failures, latencies = [], []
    for what, change, seen in ops:
        # B warms its caches: lists the directory and stats every name in it.
        for name in os.listdir(db):
            os.lstat(os.path.join(db, name))
        check(not seen(), f"visibility ({tag}) {what}: B already sees the change before A made it")
        change()
        t0 = time.monotonic()
        if late:
            time.sleep(LATE_LOOK_S)
        lat = poll(seen, t0)
        if lat is None or lat > VISIBLE_WITHIN_S:
            shown = f"{lat:.3f}s" if lat is not None else f"not within {POLL_DEADLINE_S}s"
            failures.append(f"{what} ({tag} reader): visible on B after {shown}, not within {VISIBLE_WITHIN_S}s")
            log(f"visibility FAIL ({tag}) {what}: visible on B after {shown}")
        else:
            log(f"visibility ok ({tag}) {what}: visible on B after {lat:.3f}s")
        latencies.append((what, lat))
    return failures, latencies


# ---- updates from both mounts, one after the other ----------------------------------------

def interleaved_updates(a, b):
    """A changes a file, then B changes something else of it: neither change may be lost.
    Nothing here is concurrent: B acts after A's call returned (and A's file was closed)."""
    os.mkdir(os.path.join(a, "both"))
    cases = [
        ("A appends, then B chmods",
         lambda pa, pb: write(pa, b"y" * 50, "ab"), lambda pa, pb: os.chmod(pb, 0o600),
         lambda st, data, xattrs: (len(data) == 150 and st.st_size == 150 and stat.S_IMODE(st.st_mode) == 0o600,
                                   f"size {st.st_size}, {len(data)} bytes read, mode {oct(stat.S_IMODE(st.st_mode))}; "
                                   f"want 150, 150, 0o600")),
        ("A appends, then B sets an xattr",
         lambda pa, pb: write(pa, b"y" * 50, "ab"), lambda pa, pb: os.setxattr(pb, "user.k", b"v"),
         lambda st, data, xattrs: (len(data) == 150 and xattrs.get("user.k") == b"v",
                                   f"{len(data)} bytes read, xattrs {xattrs}; want 150 bytes and user.k=v")),
        ("A chmods, then B sets the mtime",
         lambda pa, pb: os.chmod(pa, 0o600), lambda pa, pb: os.utime(pb, (1_000_000, 1_000_000)),
         lambda st, data, xattrs: (stat.S_IMODE(st.st_mode) == 0o600 and int(st.st_mtime) == 1_000_000,
                                   f"mode {oct(stat.S_IMODE(st.st_mode))}, mtime {int(st.st_mtime)}; "
                                   f"want 0o600, 1000000")),
        ("A sets an xattr, then B chmods",
         lambda pa, pb: os.setxattr(pa, "user.a", b"1"), lambda pa, pb: os.chmod(pb, 0o640),
         lambda st, data, xattrs: (stat.S_IMODE(st.st_mode) == 0o640 and xattrs.get("user.a") == b"1",
                                   f"mode {oct(stat.S_IMODE(st.st_mode))}, xattrs {xattrs}; want 0o640, user.a=1")),
    ]
    failures = []
    for i, (what, on_a, on_b, verify) in enumerate(cases):
        rel = f"both/f{i}"
        pa, pb = os.path.join(a, rel), os.path.join(b, rel)
        write(pa, b"x" * 100)
        os.chmod(pa, 0o644)
        wait_visible(pb, f"'{what}' setup")
        os.stat(pb)  # B has looked at the file
        on_a(pa, pb)
        on_b(pa, pb)
        # Both mounts must come to show both changes; wait for that (bounded), not a fixed time.
        for label, p in (("A", pa), ("B", pb)):
            last = [None]

            def shows_both(p=p, last=last):
                st = os.stat(p)
                data = read(p)
                xattrs = {n: os.getxattr(p, n) for n in os.listxattr(p)}
                ok, last[0] = verify(st, data, xattrs)
                return ok

            if poll(shows_both, time.monotonic()) is None:
                failures.append(f"{what}: mount {label} still shows {last[0]} after {POLL_DEADLINE_S}s")
        log(f"{'ok' if not failures or not failures[-1].startswith(what) else 'FAIL'} {what}")
    return failures


# ---- concurrent creates ---------------------------------------------------------------------

WRITER = r"""
import os, sys, time
d, prefix, count, go, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
deadline = time.monotonic() + 60
open(go + "." + prefix + ".ready", "w").close()
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.001)
t0 = time.monotonic()
for i in range(count):
    name = os.path.join(d, f"{prefix}{i:04d}")
    if kind == "files":
        with open(name, "xb") as f:
            f.write((f"{prefix}:{i}:" * (1 + i % 37)).encode())
    else:
        os.mkdir(name)
print(f"{prefix}: {count} {kind} in {time.monotonic() - t0:.2f}s", flush=True)
"""


def content(prefix, i):
    return (f"{prefix}:{i}:" * (1 + i % 37)).encode()


def run_writers(ctx, dirs, prefixes, count, kind):
    """One writer process per (mount dir, prefix), all released at once; returns their times."""
    go = ctx.path(f"go-{kind}")
    procs = []
    for d, prefix in zip(dirs, prefixes):
        log_path = ctx.path(f"writer-{kind}-{prefix}.log")
        procs.append((prefix, log_path, harness.spawn(["/usr/bin/python3", "-c", WRITER, d, prefix, count, go, kind],
                                                      log_path)))
    # Release them together once both are up and waiting (each leaves a ready file).
    ready = [f"{go}.{prefix}.ready" for _, prefix in zip(dirs, prefixes)]
    check(poll(lambda: all(os.path.exists(r) for r in ready), time.monotonic(), 60) is not None,
          "the writer processes did not start within 60 s")
    t0 = time.monotonic()
    with open(go, "w"):
        pass
    for prefix, log_path, p in procs:
        try:
            rc = p.wait(timeout=600)
        except Exception:
            raise harness.TestFailure(f"writer {prefix} did not finish {count} {kind} within 600s")
        with open(log_path) as f:
            out = f.read().strip()
        check(rc == 0, f"writer {prefix} ({kind}) exited {rc}: {out}")
        log(out)
    return time.monotonic() - t0


def concurrent_creates(ctx, a, b):
    os.mkdir(os.path.join(a, "shared"))
    da, db = os.path.join(a, "shared"), os.path.join(b, "shared")
    wait_visible(db, "concurrent creates setup")
    os.listdir(db)
    took = run_writers(ctx, [da, db], ["A", "B"], FILES_PER_WRITER, "files")
    log(f"2 x {FILES_PER_WRITER} concurrent creates took {took:.2f}s")
    want = {f"{p}{i:04d}" for p in ("A", "B") for i in range(FILES_PER_WRITER)}
    t0 = time.monotonic()
    listings = {}
    for label, d in (("A", da), ("B", db)):
        def settled(d=d, label=label):
            listings[label] = set(os.listdir(d))
            return listings[label] == want
        lat = poll(settled, t0, LISTING_SETTLE_S)
        got = listings[label]
        check(lat is not None,
              f"mount {label} lists {len(got)} names in the shared directory {LISTING_SETTLE_S}s after both "
              f"writers finished, want {len(want)}: missing {len(want - got)} (e.g. {sorted(want - got)[:8]}), "
              f"unexpected {sorted(got - want)[:8]}")
        log(f"mount {label} lists all {len(want)} names {lat:.3f}s after the writers finished")
    bad = []
    for label, d in (("A", da), ("B", db)):
        for name in sorted(want):
            got = read(os.path.join(d, name))
            exp = content(name[0], int(name[1:]))
            if got != exp:
                bad.append(f"{label}:{name}: {len(got)} bytes {got[:30]!r}, want {len(exp)} bytes {exp[:30]!r}")
    check(not bad, f"{len(bad)} file(s) read back wrong after concurrent creates: {bad[:10]}")
    log(f"all {len(want)} files read back right on both mounts")
    # Directories: each mkdir adds one to the parent's link count; none may be lost.
    os.mkdir(os.path.join(a, "dirs"))
    pa, pb = os.path.join(a, "dirs"), os.path.join(b, "dirs")
    wait_visible(pb, "concurrent mkdirs setup")
    took = run_writers(ctx, [pa, pb], ["A", "B"], DIRS_PER_WRITER, "dirs")
    want_dirs = {f"{p}{i:04d}" for p in ("A", "B") for i in range(DIRS_PER_WRITER)}
    for label, d in (("A", pa), ("B", pb)):
        lat = poll(lambda d=d: set(os.listdir(d)) == want_dirs, time.monotonic(), LISTING_SETTLE_S)
        check(lat is not None, f"mount {label} does not list the {len(want_dirs)} concurrently made subdirectories")
    want_nlink = 2 + len(want_dirs)
    for label, d in (("A", pa), ("B", pb)):
        poll(lambda d=d: os.stat(d).st_nlink == want_nlink, time.monotonic())  # checked just below
    nl = {label: os.stat(d).st_nlink for label, d in (("A", pa), ("B", pb))}
    check(nl["A"] == want_nlink and nl["B"] == want_nlink,
          f"after 2 x {DIRS_PER_WRITER} concurrent mkdirs in one directory its st_nlink is {nl['A']} on A and "
          f"{nl['B']} on B, want {want_nlink} (2 + one per subdirectory)")
    return len(want)


def test(ctx, _args):
    fs_common.require_fuse()
    ring = fs_common.cluster_with_fs(ctx)
    ga = fs_common.mount(ctx, ring, name="fsA")
    gb = fs_common.mount(ctx, ring, name="fsB")
    a, b = ga.mountpoint, gb.mountpoint
    t = fs_common.Timings()
    with t.step("close-to-open"):
        cto_failures = close_to_open(a, b)
    vis_failures, slow, lats = [], [], []
    for late in (False, True):
        with t.step(f"visibility ({'late' if late else 'eager'} reader)"):
            f, l = visibility(a, b, late)
        vis_failures += f
        lats += [x for _, x in l if x is not None]
        slow += [f"{what} ({'late' if late else 'eager'} reader) {x:.3f}s" for what, x in l
                 if x is not None and x > VISIBLE_WITHIN_S]
    if lats:
        log(f"visibility latencies: max {max(lats):.3f}s over {len(lats)} changes")
    if slow:
        log(f"WARNING: visible on B only after more than {VISIBLE_WITHIN_S}s (within the {POLL_DEADLINE_S}s "
            f"deadline): {', '.join(slow)}")
    problems = [f"close-to-open: {x}" for x in cto_failures] + [f"visibility: {x}" for x in vis_failures]
    with t.step("updates from both mounts"):
        problems += [f"lost update: {x}" for x in interleaved_updates(a, b)]
    n = 0
    with t.step("concurrent creates"):
        try:
            n = concurrent_creates(ctx, a, b)
        except harness.TestFailure as e:
            problems.append(f"concurrent creates: {e}")
    check(not problems, f"{len(problems)} problem(s) between two mounts:\n  " + "\n  ".join(problems))
    for g in (ga, gb):
        rc = g.stop()
        check(rc == 0, f"{g.name} exited {rc} on SIGTERM")
    log("timings: " + t.summary())
    return (f"close-to-open and visibility (max {max(lats):.2f}s) between two mounts; {n} concurrent creates "
            f"listed and read on both (steps: {t.summary()})")


if __name__ == "__main__":
    harness.run(test, "test_fs_two_mounts", __doc__)
