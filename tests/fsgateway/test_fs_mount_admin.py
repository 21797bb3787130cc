#!/usr/bin/env python3
"""The mount's life around the data: filesystems, read-only mounts, capacity, crashes and
outages, on a 3-node ring (filesystem "default": N=3 W=2 R=2).

1. Filesystems through the CLI: `fs create` of a second filesystem (N=2), `fs ls` lists both,
   a second `fs create` of the name fails and changes nothing, `fs rm` removes it (then `fs
   ls` leaves it out, `fs rm` again exits 1, and ringstore-fs refuses to mount it with exit 1).
2. statfs: the mount reports the cluster's capacity: the nodes' disks (statvfs of each data
   dir, a disk shared by several nodes counted once) added up and divided by the filesystem's
   N, for N=3 and for N=2.
3. -o ro: a read-only mount reads what a read-write mount wrote, and every change (create,
   write, truncate, unlink, mkdir, rmdir, rename, chmod, utime, setxattr, link, symlink) fails
   with EROFS and changes nothing; statvfs says ST_RDONLY. (The kernel refuses most of them
   itself on an ro mount; the gateway refuses every one too, opens for writing included.)
4. A brief loss of quorum: two of three nodes stop while a file's data is unwritten; an
   fsync started during the outage waits, and succeeds once the nodes are back (on new
   ports, rejoining the ring); a new mount reads the bytes.
5. A long loss of quorum (--io-timeout 3): a read of a file the mount has not cached and an
   fsync of new data fail with EIO after about the io-timeout, never with other data; after
   the nodes are back the same file descriptor's fsync succeeds and a new mount reads every
   byte, the write made during the outage included. (A chunk write that missed its quorum
   may still have landed on the node that stayed up, so this part alone would not catch a
   gateway that dropped the data of a failed flush: fs_background_test's
   FailedBackgroundWritesAreWrittenAgainByTheFlush does, where nothing lands.)
6. -o auto_unmount: ringstore-fs killed with SIGKILL leaves no mount behind, and a new
   gateway mounts the same mountpoint and reads the data. Before the kill, a file held open
   with data never closed nor synced: with --dirty-expire 1, another mount reads that data
   within 10 s, and it is there after the crash.

Run: /usr/bin/python3 tests/fsgateway/test_fs_mount_admin.py --bin-dir build"""

import errno
import os
import queue
import random
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_common  # noqa: E402
from fs_common import EXIT_OK, check, expect_rc, harness, log, wait_until  # noqa: E402

IO_TIMEOUT_S = 3.0
OUTAGE_S = 1.5  # the brief outage: well inside the default --io-timeout (30 s)
DIRTY_EXPIRE_S = 1.0  # the crash part's age-based writeback
# The outage parts need the data unwritten until their fsync: no age-based writeback there.
NO_EXPIRY = ["--dirty-expire", "0"]


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# A file held open by a child process. Every close(2) of a descriptor to a FUSE file is a FLUSH,
# which writes back the file's unwritten data; a process that forks while it holds such a
# descriptor hands a copy to the child, whose exec closes it. The node restarts below would
# then wait on the very write-back that needs them. So the test process itself never holds the
# descriptor: a helper does, and runs one call per line of stdin ("write PATH" writes PATH's
# bytes, "fsync", "close"), answering "ERRNO SECONDS" (0 on success) for each.
_HOLDER = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    t0, err = time.monotonic(), 0
    try:
        if cmd == "write":
            with open(arg, "rb") as f:
                view = memoryview(f.read())
            while view:
                view = view[os.write(fd, view):]
        elif cmd == "fsync":
            os.fsync(fd)
        elif cmd == "close":
            os.close(fd)
        else:
            err = -1
    except OSError as e:
        err = e.errno
    print(err, time.monotonic() - t0, flush=True)
    if cmd == "close":
        break
"""


class HeldFile:
    def __init__(self, path, workdir):
        self.workdir = workdir
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, close_fds=True)
        harness._register(self.proc)  # killed by PID at cleanup if the test fails
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            err, took = line.split()
            self.answers.put((int(err), float(took)))

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout):
        """(errno, seconds) of the oldest call unanswered, or None after timeout seconds."""
        try:
            return self.answers.get(timeout=timeout)
        except queue.Empty:
            return None

    def call(self, cmd, timeout=120):
        self.send(cmd)
        got = self.answer(timeout)
        check(got is not None, f"`{cmd}` on a held file did not return within {timeout}s")
        return got

    def write(self, data):
        src = os.path.join(self.workdir, f"src-{os.getpid()}-{id(data)}")
        with open(src, "wb") as f:
            f.write(data)
        err, _ = self.call(f"write {src}")
        check(err == 0, f"a write to a held file failed: {errno.errorcode.get(err, err)}")

    def close(self):
        if self.proc.poll() is None:
            self.call("close")
        self.proc.wait(timeout=30)


def errno_of(fn, *a, **kw):
    """0 if fn(*a, **kw) succeeds, else its errno."""
    try:
        fn(*a, **kw)
        return 0
    except OSError as e:
        return e.errno


# ---- 1. filesystems through the CLI ---------------------------------------------------------

def catalog(ctx, ring):
    r = ctx.cli("--replicas", "2", "--w", "2", "--r", "1", "fs", "create", "scratch", cluster=ring[0])
    expect_rc(r, EXIT_OK, "ringstore fs create scratch")
    r_ls = ctx.cli("fs", "ls", cluster=ring[1])
    expect_rc(r_ls, EXIT_OK, "ringstore fs ls")
    listed = r_ls.stdout.decode()
    for name in ("default", "scratch"):
        check(any(line.split() and line.split()[0] == name for line in listed.splitlines()),
              f"`fs ls` does not list {name}:\n{listed}")
    r = ctx.cli("--replicas", "1", "fs", "create", "scratch", cluster=ring[0])
    # A name in use is the caller's mistake, as for `volume create`: usage error, exit 2.
    expect_rc(r, 2, "a second ringstore fs create scratch")
    check("scratch" in r.stderr.decode() and "exists" in r.stderr.decode(),
          f"the refusal does not say the filesystem exists: {r.describe()}")
    after = ctx.cli("fs", "ls", cluster=ring[2])
    expect_rc(after, EXIT_OK, "ringstore fs ls after the refused create")
    check(after.stdout == r_ls.stdout, f"the refused create changed the catalog:\n{listed}\n--- now ---\n"
          f"{after.stdout.decode()}")
    return listed


def remove_scratch(ctx, ring):
    expect_rc(ctx.cli("fs", "rm", "scratch", cluster=ring[0]), EXIT_OK, "ringstore fs rm scratch")
    r = ctx.cli("fs", "ls", cluster=ring[2])
    expect_rc(r, EXIT_OK, "ringstore fs ls after fs rm")
    check(not any(line.split() and line.split()[0] == "scratch" for line in r.stdout.decode().splitlines()),
          f"`fs ls` still lists scratch after `fs rm`:\n{r.stdout.decode()}")
    expect_rc(ctx.cli("fs", "rm", "scratch", cluster=ring[0]), 1, "a second ringstore fs rm scratch")
    g = ctx.fs_gateway(ring, fs="scratch", name="fs-removed")
    try:
        g.start(timeout=20)
    except harness.TestFailure as e:
        check(g.proc.returncode == 1, f"mounting a removed filesystem: exit {g.proc.returncode}, want 1: {e}")
        check("scratch" in g.log() and "fs create" in g.log(),
              f"ringstore-fs does not say the filesystem is missing:\n{harness.tail(g.log())}")
        return
    raise harness.TestFailure("ringstore-fs mounted a removed filesystem")


# ---- 2. statfs ------------------------------------------------------------------------------

def capacity(ring, gw, n):
    """The mount's statvfs against the nodes' disks divided by N (the gateway caches its answer
    for the attribute TTL and the disks' free space moves, so free space gets some slack)."""
    total = free = 0
    disks = {}  # nodes sharing a disk (all of them, here) count it once
    for node in ring:
        disks.setdefault(os.statvfs(node.data_dir).f_fsid, node.data_dir)
    for data_dir in disks.values():
        s = os.statvfs(data_dir)
        total += s.f_blocks * s.f_frsize
        free += s.f_bavail * s.f_frsize
    got = os.statvfs(gw.mountpoint)
    got_total, got_free = got.f_blocks * got.f_frsize, got.f_bavail * got.f_frsize
    want_total, want_free = total // n, free // n
    check(abs(got_total - want_total) <= max(want_total // 100, 1 << 20),
          f"{gw.fs}: statvfs total {got_total} bytes, want the {len(disks)} disk(s)' {total} / N={n} = {want_total}")
    check(abs(got_free - want_free) <= max(want_total // 50, 64 << 20),
          f"{gw.fs}: statvfs free {got_free} bytes, want the nodes' {free} / N={n} = {want_free}")
    log(f"statvfs of {gw.fs} (N={n}): {got_total >> 20} MiB, {got_free >> 20} MiB free "
        f"(the nodes' disks: {total >> 20} MiB, {free >> 20} MiB free)")


# ---- 3. -o ro -------------------------------------------------------------------------------

def read_only(ctx, ring, rw):
    d = os.path.join(rw.mountpoint, "ro")
    os.mkdir(d)
    os.mkdir(os.path.join(d, "sub"))
    data = random.Random(3).randbytes(300_000)
    write_file(os.path.join(d, "f"), data)
    os.setxattr(os.path.join(d, "f"), "user.k", b"v")
    ro = fs_common.mount(ctx, ring, name="fs-ro", read_only=True)
    r = os.path.join(ro.mountpoint, "ro")
    check(read_file(os.path.join(r, "f")) == data, "the read-only mount reads other bytes than were written")
    check(os.getxattr(os.path.join(r, "f"), "user.k") == b"v", "the read-only mount lost an xattr")
    f = os.path.join(r, "f")
    changes = {
        "create": lambda: os.close(os.open(os.path.join(r, "new"), os.O_CREAT | os.O_WRONLY, 0o644)),
        "open for writing": lambda: os.close(os.open(f, os.O_WRONLY)),
        "truncate": lambda: os.truncate(f, 10),
        "unlink": lambda: os.unlink(f),
        "mkdir": lambda: os.mkdir(os.path.join(r, "d2")),
        "rmdir": lambda: os.rmdir(os.path.join(r, "sub")),
        "rename": lambda: os.rename(f, os.path.join(r, "g")),
        "chmod": lambda: os.chmod(f, 0o600),
        "chown": lambda: os.chown(f, 1, 1),
        "utime": lambda: os.utime(f, (1, 1)),
        "setxattr": lambda: os.setxattr(f, "user.k", b"w"),
        "removexattr": lambda: os.removexattr(f, "user.k"),
        "link": lambda: os.link(f, os.path.join(r, "h")),
        "symlink": lambda: os.symlink("f", os.path.join(r, "s")),
        "mknod fifo": lambda: os.mkfifo(os.path.join(r, "p")),
    }
    wrong = [f"{what}: {errno.errorcode.get(e, e) if e else 'succeeded'}"
             for what, fn in changes.items() if (e := errno_of(fn)) != errno.EROFS]
    check(not wrong, "on the -o ro mount, changes that did not fail with EROFS: " + "; ".join(wrong))
    check(os.statvfs(ro.mountpoint).f_flag & os.ST_RDONLY, "statvfs of the -o ro mount lacks ST_RDONLY")
    check(sorted(os.listdir(d)) == ["f", "sub"], f"the refused changes changed the directory: {os.listdir(d)}")
    st = os.stat(os.path.join(d, "f"))
    check((st.st_size, st.st_mode & 0o777) == (len(data), 0o644), f"the refused changes changed the file: {st}")
    check(read_file(os.path.join(d, "f")) == data and os.getxattr(os.path.join(d, "f"), "user.k") == b"v",
          "the refused changes changed the file's bytes or xattr")
    check(ro.stop() == 0, "the read-only ringstore-fs did not exit 0 on SIGTERM")
    log(f"-o ro: reads work, {len(changes)} kinds of change fail with EROFS and change nothing")


# ---- 4 and 5. losing quorum -----------------------------------------------------------------

def stop_two(ring):
    stopped = ring[1:]
    for n in stopped:
        check(n.stop() == 0, f"{n.name} did not exit cleanly on SIGTERM")
    return stopped


def restart(ctx, ring, stopped):
    for n in stopped:
        n.start()
    harness.wait_ring_agrees(ctx, ring, 30)


def brief_outage(ctx, ring, rng):
    gw = fs_common.mount(ctx, ring, name="fs-brief", extra_args=NO_EXPIRY)
    data = rng.randbytes(700_000)
    held = HeldFile(os.path.join(gw.mountpoint, "brief.bin"), gw.workdir)
    try:
        check(held.call("fsync")[0] == 0, "the first fsync failed")  # the file exists in the cluster
        held.write(data)  # ... its data only in the mount's cache
        stopped = stop_two(ring)
        t0 = time.monotonic()
        held.send("fsync")
        early = held.answer(OUTAGE_S)
        check(early is None, f"fsync returned {early} while 2 of 3 nodes were down (W=2)")
        restart(ctx, ring, stopped)
        got = held.answer(60)
        check(got is not None, "fsync did not return within 60 s of the nodes coming back")
        err, took = got
        check(err == 0, f"fsync across a {time.monotonic() - t0:.1f} s outage failed with "
                        f"{errno.errorcode.get(err, err)}; it should wait and retry")
        log(f"brief outage: fsync waited {took:.1f}s and succeeded once the nodes were back")
    finally:
        held.close()
    check(gw.stop() == 0, "ringstore-fs did not exit 0 on SIGTERM after the brief outage")
    fresh = fs_common.mount(ctx, ring, name="fs-brief-check")
    check(read_file(os.path.join(fresh.mountpoint, "brief.bin")) == data,
          "a new mount reads other bytes than were fsynced across the outage")
    check(fresh.stop() == 0, "ringstore-fs did not exit 0 on SIGTERM")


def long_outage(ctx, ring, rng):
    writer = fs_common.mount(ctx, ring, name="fs-writer")
    old = rng.randbytes(500_000)
    write_file(os.path.join(writer.mountpoint, "old.bin"), old)
    check(writer.stop() == 0, "ringstore-fs did not exit 0 on SIGTERM")
    gw = fs_common.mount(ctx, ring, name="fs-long", extra_args=["--io-timeout", str(IO_TIMEOUT_S), *NO_EXPIRY])
    os.listdir(gw.mountpoint)  # the root's listing is cached; old.bin's data is not
    new = rng.randbytes(300_000)
    held = HeldFile(os.path.join(gw.mountpoint, "new.bin"), gw.workdir)
    try:
        check(held.call("fsync")[0] == 0, "the first fsync failed")
        held.write(new)
        stopped = stop_two(ring)
        t0 = time.monotonic()
        try:
            got = read_file(os.path.join(gw.mountpoint, "old.bin"))
            what = "the right bytes" if got == old else f"{len(got)} other bytes"
            raise harness.TestFailure(f"a read with 2 of 3 nodes down (R=2) returned {what} after "
                                      f"{time.monotonic() - t0:.1f}s; expected EIO after --io-timeout")
        except OSError as e:
            took = time.monotonic() - t0
            check(e.errno == errno.EIO, f"a read during the outage failed with {errno.errorcode.get(e.errno)}, want EIO")
        check(IO_TIMEOUT_S - 0.5 <= took <= IO_TIMEOUT_S + 12,
              f"a read during the outage failed after {took:.1f}s, expected about --io-timeout {IO_TIMEOUT_S}s")
        e, took_sync = held.call("fsync")
        check(e == errno.EIO, f"fsync during the outage: {errno.errorcode.get(e, e) if e else 'succeeded'}, want EIO")
        check(IO_TIMEOUT_S - 0.5 <= took_sync <= IO_TIMEOUT_S + 12,
              f"fsync during the outage failed after {took_sync:.1f}s, expected about {IO_TIMEOUT_S}s")
        log(f"long outage: a read failed with EIO after {took:.1f}s, fsync after {took_sync:.1f}s")
        restart(ctx, ring, stopped)
        e, _ = held.call("fsync")
        check(e == 0, f"fsync once the nodes were back: {errno.errorcode.get(e, e)}; the unwritten data must be kept")
    finally:
        held.close()
    check(read_file(os.path.join(gw.mountpoint, "old.bin")) == old, "the read after the outage returned other bytes")
    check(gw.stop() == 0, "ringstore-fs did not exit 0 on SIGTERM after the long outage")
    fresh = fs_common.mount(ctx, ring, name="fs-long-check")
    check(read_file(os.path.join(fresh.mountpoint, "new.bin")) == new,
          "a new mount reads other bytes than the write made during the outage")
    check(read_file(os.path.join(fresh.mountpoint, "old.bin")) == old, "a new mount reads other bytes of old.bin")
    check(fresh.stop() == 0, "ringstore-fs did not exit 0 on SIGTERM")


# ---- 6. auto_unmount ------------------------------------------------------------------------

def crash(ctx, ring):
    gw = fs_common.mount(ctx, ring, name="fs-crash", extra_args=["--dirty-expire", str(DIRTY_EXPIRE_S)])
    data = b"kept across a gateway crash\n" * 1000
    write_file(os.path.join(gw.mountpoint, "kept"), data)  # closed: durable at W=2
    # A file kept open: its data reaches the cluster within about --dirty-expire all the same,
    # as another mount sees, and so survives the crash.
    held = HeldFile(os.path.join(gw.mountpoint, "open.bin"), gw.workdir)
    unclosed = b"written, never closed nor synced\n" * 3000
    t0 = time.monotonic()
    held.write(unclosed)
    reader = fs_common.mount(ctx, ring, name="fs-crash-reader")
    seen = os.path.join(reader.mountpoint, "open.bin")
    wait_until(lambda: os.path.exists(seen) and read_file(seen) == unclosed, 10,
               f"another mount to read a held file's data within 10 s (--dirty-expire {DIRTY_EXPIRE_S})")
    log(f"another mount read the held file's data {time.monotonic() - t0:.2f}s after its write "
        f"(--dirty-expire {DIRTY_EXPIRE_S}, the reader's start included)")
    check(reader.stop() == 0, "ringstore-fs (reader) did not exit 0 on SIGTERM")
    gw.kill9()  # before the holder goes: its close would write the data back itself
    held.proc.kill()
    held.proc.wait(timeout=30)
    wait_until(lambda: not gw.mounted(), 10, f"{gw.mountpoint} to be unmounted after ringstore-fs was killed")
    gw.start()
    check(read_file(os.path.join(gw.mountpoint, "kept")) == data, "the data read after the crash differs")
    check(read_file(os.path.join(gw.mountpoint, "open.bin")) == unclosed,
          "the held file's data, written back before the crash, differs after it")
    check(gw.stop() == 0, "ringstore-fs did not exit 0 on SIGTERM")
    log("auto_unmount: the killed gateway's mount went away; a new gateway mounted the same mountpoint")


def test(ctx, args):
    fs_common.require_fuse()
    rng = random.Random(args.seed)
    ring = fs_common.cluster_with_fs(ctx)
    catalog(ctx, ring)
    scratch = fs_common.mount(ctx, ring, fs="scratch", name="fs-scratch")
    write_file(os.path.join(scratch.mountpoint, "x"), b"x" * 5000)
    rw = fs_common.mount(ctx, ring)
    capacity(ring, rw, 3)
    capacity(ring, scratch, 2)
    check(scratch.stop() == 0, "ringstore-fs (scratch) did not exit 0 on SIGTERM")
    remove_scratch(ctx, ring)
    read_only(ctx, ring, rw)
    check(rw.stop() == 0, "ringstore-fs did not exit 0 on SIGTERM")
    brief_outage(ctx, ring, rng)
    long_outage(ctx, ring, rng)
    crash(ctx, ring)
    return ("fs create/ls/rm, statfs = disks / N, -o ro refuses 15 kinds of change, a brief outage "
            "waited out, a long one EIO after --io-timeout with nothing lost, auto_unmount after SIGKILL, "
            "a held file's data written back by age")


if __name__ == "__main__":
    harness.run(test, "test_fs_mount_admin", __doc__)
