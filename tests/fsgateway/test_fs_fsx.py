#!/usr/bin/env python3
"""Random operations on a mount against a local reference: fsx.py runs one seeded sequence of
writes, truncates, reads, renames, links, unlinks, chmods and utimes on a ringstore-fs mount
(a 3-node ring, a filesystem with 64 KiB chunks so that writes straddle many chunk edges) and
on a local directory, and compares contents and metadata after every step.

RINGSTORE_FSX_OPS sets the number of operations (default 100,000, the issue's figure; about
4 min here)."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_common  # noqa: E402
import fsx  # noqa: E402
from fs_common import check, harness, log  # noqa: E402


def test(ctx, args):
    fs_common.require_fuse()
    ops = int(os.environ.get("RINGSTORE_FSX_OPS", "100000"))
    ring = fs_common.cluster_with_fs(ctx, fs_args=["--chunk-size", "64K"])
    gw = fs_common.mount(ctx, ring)
    a = os.path.join(gw.mountpoint, "fsx")
    b = ctx.mkdtemp("fsx-ref-")
    os.mkdir(a)
    seed = args.seed % (1 << 31)
    log(f"fsx: {ops} ops, seed {seed}")
    rc = fsx.main(["--a", a, "--b", b, "--ops", str(ops), "--seed", str(seed), "--progress-every", "10000"])
    check(rc == 0, f"fsx found a divergence (exit {rc}, seed {seed}); see the output above")
    check(gw.stop() == 0, "ringstore-fs did not exit 0 on SIGTERM")
    return f"{ops} random ops, mount and local directory identical (seed {seed})"


if __name__ == "__main__":
    harness.run(test, "test_fs_fsx", __doc__)
