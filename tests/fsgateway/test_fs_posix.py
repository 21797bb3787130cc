#!/usr/bin/env python3
"""POSIX conformance on a real mount: posix_checks.py's checks (every operation with its error
cases, modes, owners, timestamps, links, xattrs, long paths, permissions for a non-root user)
run on a ringstore-fs mount of a 3-node ring; EXDEV against a second filesystem's mount.
Then the gateway is stopped with SIGTERM and must unmount cleanly and exit 0.
RINGSTORE_POSIX_CHECKS=name,name runs only those checks (while working on one)."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_common  # noqa: E402
import posix_checks  # noqa: E402
from fs_common import check, harness, log  # noqa: E402


def test(ctx, _args):
    fs_common.require_fuse()
    ring = fs_common.cluster_with_fs(ctx)
    fs_common.create_fs(ctx, ring[0], "other")
    gw = fs_common.mount(ctx, ring)
    other = fs_common.mount(ctx, ring, fs="other", name="fs-other")
    # The non-root user must be able to reach the run directory.
    os.chmod(gw.workdir, 0o755)
    os.chmod(other.workdir, 0o755)
    failed = []

    def report(res):
        name, ok, msg = res
        state = "PASS" if ok else ("SKIP" if ok is None else "FAIL")
        log(f"{state} {name}{': ' + msg if msg and ok is not True else ''}")
        if ok is False:
            failed.append(f"{name}: {msg}")

    # ringstore-fs implements every fallocate mode checked: a refusal (EOPNOTSUPP) is a failure.
    only = [n for n in os.environ.get("RINGSTORE_POSIX_CHECKS", "").split(",") if n] or None
    results = posix_checks.run_checks(gw.mountpoint, nonroot_uid=65534, only=only, other_dir=other.mountpoint,
                                      report=report, require_fallocate=True)
    skipped = [n for n, ok, _ in results if ok is None]
    log(f"{len(results)} checks: {len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed, "
        f"{len(skipped)} skipped")
    check(not failed, f"{len(failed)} POSIX check(s) failed:\n  " + "\n  ".join(failed))
    check(not skipped, f"checks skipped on a root run with a second mount: {skipped}")
    for g in (gw, other):
        rc = g.stop()
        check(rc == 0, f"{g.name} exited {rc} on SIGTERM")
        check(not g.mounted(), f"{g.mountpoint} still mounted after {g.name} exited")
    return f"{len(results)} POSIX checks passed on a 3-node ring's mount"


if __name__ == "__main__":
    harness.run(test, "test_fs_posix", __doc__)
