#!/usr/bin/env python3
"""A volume as a real disk: nbdfuse -> loop device -> ext4, end to end (needs root and FUSE).

nbdfuse exposes the volume as a file, `losetup` attaches it, mkfs.ext4 formats it (discarding
the device first, so TRIM reaches the gateway), and files of random content go into a
directory tree. A third of them are deleted and `fstrim` discards the freed blocks (TRIMs
through the whole stack), and more files are written. After sync, umount and losetup -d,
`e2fsck -fn` finds the filesystem clean.
Then everything is taken down, the gateway is stopped with SIGTERM (writing back what it has)
and a new one started with an empty cache: through a new nbdfuse, e2fsck is still clean, and
the filesystem mounted again holds every file with the same sha256.

Cleanup undoes the stack in order even on failure: umount, losetup -d, fusermount3 -u, then
the processes (killed by PID), then the temp dirs.

Run (as root): /usr/bin/python3 tests/nbd/test_nbd_disk.py --bin-dir build
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_common import *  # noqa: E402,F401,F403
import nbd_common as nc  # noqa: E402

MiB = 1 << 20
VOL_SIZE = 256 * MiB


def write_files(root, rnd, big_mib=48):
    """A small tree of random files; returns {relative path: sha256}."""
    files = {}
    sizes = [0, 1, 511, 4096, 4097, 65536 + 3, MiB, 3 * MiB + 123] + [rnd.randrange(1, 2 * MiB) for _ in range(40)] + \
        [rnd.randrange(1, 8192) for _ in range(100)]
    for i, size in enumerate(sizes):
        rel = os.path.join(f"d{i % 4}", f"sub{i % 3}", f"f{i}.bin") if i % 5 else f"top{i}.bin"
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = rnd.randbytes(size)
        with open(path, "wb") as f:
            f.write(data)
        files[rel] = harness.sha256(data)
    big = rnd.randbytes(big_mib * MiB)  # one file large enough to span many chunks
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(big)
    files["big.bin"] = harness.sha256(big)
    return files


def verify_files(root, files, what):
    for rel, want in sorted(files.items()):
        path = os.path.join(root, rel)
        check(os.path.isfile(path), f"{what}: {rel} is missing")
        check(harness.sha256_file(path) == want, f"{what}: {rel} has other content")


def fsck(target, what):
    r = nc.tool(["e2fsck", "-fn", target], what, want=None, timeout=120)
    check(r.returncode == 0, f"{what}: e2fsck -fn found problems: {r.describe()}")
    log(f"{what}: e2fsck -fn clean: {r.stdout.decode(errors='replace').strip().splitlines()[-1]}")


def test(ctx, args):
    require_root("mounting a filesystem on a loop device over nbdfuse")
    harness.need(os.path.exists("/dev/fuse"), "/dev/fuse does not exist (no FUSE in this kernel/container)")
    harness.need(os.path.exists("/dev/loop-control") or os.path.exists("/dev/loop0"),
                 "no loop devices (/dev/loop-control missing)")
    require_tools("nbdfuse", "fusermount3", "losetup", "mkfs.ext4", "e2fsck", "mount", "umount", "fstrim")
    rnd = random.Random(args.seed)
    nodes, gw = cluster(ctx)
    create_volume(ctx, nodes[0], "disk", "256M")

    # Build the stack, make a filesystem, fill it.
    fuse = nc.FuseFile(ctx, gw.uri("disk"))
    check(os.path.getsize(fuse.file) == VOL_SIZE, f"nbdfuse file is {os.path.getsize(fuse.file)} bytes")
    loop = nc.LoopDevice(fuse.file)
    t0 = now()
    nc.tool(["mkfs.ext4", "-q", "-F", "-L", "ringstore", loop.dev], "mkfs.ext4", timeout=180)
    log(f"mkfs.ext4 on {loop.dev}: {now() - t0:.1f}s")
    mnt = nc.Mount(ctx, loop.dev, fuse=fuse)
    t0 = now()
    files = write_files(mnt.dir, rnd)
    os.sync()
    total = sum(os.path.getsize(mnt.path(f)) for f in files)
    log(f"wrote {len(files)} files, {total / MiB:.1f} MiB, and synced in {now() - t0:.1f}s")
    verify_files(mnt.dir, files, "before umount")
    # Delete a third of the files and fstrim: the discards reach the gateway as TRIMs (whole
    # chunks become holes); the files that remain must not lose a byte.
    for i, rel in enumerate(sorted(files)):
        if i % 3 == 0 and rel != "big.bin":
            os.unlink(mnt.path(rel))
            del files[rel]
    os.sync()
    r = nc.tool(["fstrim", "-v", mnt.dir], "fstrim", timeout=120)
    log(f"deleted a third of the files; {r.stdout.decode(errors='replace').strip()}")
    more = write_files(os.path.join(mnt.dir, "after-trim"), rnd, big_mib=8)
    files.update({os.path.join("after-trim", k): v for k, v in more.items()})
    os.sync()
    check(mnt.close() == 0, f"umount {mnt.dir} failed")
    loop.close()
    fsck(fuse.file, "after umount")
    check(fuse.close() == 0, "nbdfuse did not exit 0 after fusermount3 -u")

    # A new gateway, empty cache: everything comes from the cluster.
    check(gw.stop() == 0, "ringstore-block did not exit 0 after SIGTERM (writeback failed?)")
    gw.start()
    fuse = nc.FuseFile(ctx, gw.uri("disk"), name="fuse2")
    fsck(fuse.file, "through a new gateway")
    loop = nc.LoopDevice(fuse.file)
    mnt = nc.Mount(ctx, loop.dev, fuse=fuse)
    verify_files(mnt.dir, files, "remounted through a new gateway")
    check(mnt.close() == 0, f"umount {mnt.dir} failed")
    loop.close()
    check(fuse.close() == 0, "nbdfuse did not exit 0 after fusermount3 -u")
    check(gw.stop() == 0, "ringstore-block did not exit 0 after SIGTERM")
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly on SIGTERM")
    return (f"ext4 on loop on nbdfuse: {len(files)} files intact after fstrim, e2fsck clean, remounted via a new "
            f"gateway")


if __name__ == "__main__":
    harness.run(test, "test_nbd_disk", __doc__)
