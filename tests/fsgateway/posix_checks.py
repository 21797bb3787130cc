#!/usr/bin/env python3
"""POSIX conformance checks for ringstore-fs (the FUSE gateway), runnable on any directory.

The checks only use the kernel's file system interface, so they run the same against a
ringstore-fs mount point and against an ordinary local directory (tmpfs, ext4): on Linux
local file systems every check passes, which is what validates the checks themselves.

    /usr/bin/python3 tests/fsgateway/posix_checks.py --dir D [--nonroot-uid 65534]
        [--only NAME,...] [--list] [--other-dir D2] [--timeout S] [--keep]

Each check runs in its own fresh subdirectory of a fresh run directory made under D
(D/posix_checks.<pid>.<random>/NN_<name>), and the run directory is removed at the end
(--keep leaves it). One line per check: "PASS name", "FAIL name: reason" or
"SKIP name: reason" (a PASS may carry a "note:" about something legal but worth knowing,
e.g. DT_UNKNOWN in readdir). Exit status: 0 when nothing failed and something passed,
1 when a check failed, 77 when everything was skipped (D not writable, ...), 2 on usage.

As a module:  run_checks(root, nonroot_uid=65534, only=None, ...) -> [(name, ok, message)]
with ok True (pass), False (fail) or None (skipped): a caller should test `ok is False`.

Conventions: data checks cross and straddle 1 MiB boundaries (CHUNK), which are chunk
boundaries of the gateway's default 256 KiB chunks (and of chunks up to 1 MiB). Errno expectations are what Linux local file systems return;
where POSIX allows an alternative (rmdir/rename onto a non-empty directory: ENOTEMPTY or
EEXIST) both are accepted and the alternative is noted. Checks that need root (chown, and
the non-root permission checks, which fork a child that drops to --nonroot-uid) are skipped
when not running as root. Timestamp checks wait (bounded, by the condition, not a fixed sleep)
until the kernel's coarse clock, which local file systems stamp times with, has passed the
timestamp read before the operation, so a later timestamp must be strictly greater.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from posix_suite.base import *  # noqa: E402,F401,F403
# The order of these imports is the order the checks run in.
import posix_suite.check_files  # noqa: E402,F401
import posix_suite.check_dirs  # noqa: E402,F401
import posix_suite.check_rename  # noqa: E402,F401
import posix_suite.check_links_attrs  # noqa: E402,F401
import posix_suite.check_xattr_names  # noqa: E402,F401
import posix_suite.check_perms  # noqa: E402,F401
import posix_suite.check_fs  # noqa: E402,F401


# runner

def _rmtree(path):
    def onerror(_fn, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=onerror)


class _Timeout(Exception):
    pass


_SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "posix_suite")


def _where(tb):
    """Where in a check an unexpected exception came from: its file and line."""
    frames = [f for f in traceback.extract_tb(tb) if os.path.dirname(os.path.abspath(f.filename)) == _SUITE]
    return f" ({os.path.basename(frames[-1].filename)} line {frames[-1].lineno})" if frames else ""


def run_one(name, fn, d, nonroot_uid, other_dir, timeout, require_fallocate=False):
    c = Ctx(d, nonroot_uid, other_dir, require_fallocate)
    use_alarm = timeout and threading.current_thread() is threading.main_thread()
    old_handler = None
    if use_alarm:
        def on_alarm(_sig, _frm):
            raise _Timeout()
        old_handler = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(int(timeout))
    try:
        fn(c)
        ok, msg = True, ("note: " + "; ".join(c.notes)) if c.notes else ""
    except CheckFailed as e:
        ok, msg = False, str(e)
    except CheckSkipped as e:
        ok, msg = None, str(e)
    except _Timeout:
        ok, msg = False, f"timed out after {timeout} s"
    except OSError as e:
        ok, msg = False, f"unexpected {ename(e.errno)}: {e}{_where(e.__traceback__)}"
    except Exception as e:  # noqa: BLE001 - a broken check is a failure, not a crash
        ok, msg = False, f"unexpected {type(e).__name__}: {e}{_where(e.__traceback__)}"
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old_handler)
    return name, ok, msg


def run_checks(root, nonroot_uid=65534, only=None, other_dir=None, timeout=120, keep=False,
               report=None, require_fallocate=False):
    """Runs the checks (all, or those named in `only`) in a fresh run directory under root.

    Returns [(name, ok, message)], ok True/False/None (None = skipped). `report`, if given,
    is called with each tuple as soon as the check finishes. Raises SkipAll if root is not a
    writable directory, ValueError for an unknown name in `only`."""
    known = [n for n, _f, _d in CHECKS]
    if only:
        unknown = [n for n in only if n not in known]
        if unknown:
            raise ValueError(f"unknown check(s): {', '.join(unknown)}")
    selected = [(n, f) for n, f, _d in CHECKS if not only or n in only]
    if not os.path.isdir(root):
        raise SkipAll(f"{root} is not a directory")
    run_dir = os.path.join(root, f"posix_checks.{os.getpid()}.{random.randrange(1 << 32):08x}")
    try:
        os.mkdir(run_dir, 0o755)
    except OSError as e:
        raise SkipAll(f"cannot create a directory in {root}: {e.strerror}") from e
    results = []
    old_umask = os.umask(0o022)
    try:
        os.chmod(run_dir, 0o755)
        for i, (name, fn) in enumerate(selected):
            d = os.path.join(run_dir, f"{i:02d}_{name}")
            os.mkdir(d, 0o755)
            res = run_one(name, fn, d, nonroot_uid, other_dir, timeout, require_fallocate)
            results.append(res)
            if report:
                report(res)
            if not keep:
                _rmtree(d)
    finally:
        os.umask(old_umask)
        if not keep:
            _rmtree(run_dir)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", help="directory to test in (a mount point or any local directory)")
    ap.add_argument("--nonroot-uid", type=int, default=65534, help="uid for the permission checks (default 65534)")
    ap.add_argument("--only", help="comma-separated check names")
    ap.add_argument("--list", action="store_true", help="list the checks and exit")
    ap.add_argument("--other-dir", help="a directory on another file system, for the EXDEV check")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per check (default 120)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--require-fallocate", action="store_true",
                    help="fail, rather than accept, EOPNOTSUPP from the fallocate modes checked")
    args = ap.parse_args(argv)
    if args.list:
        for n, _f, doc in CHECKS:
            print(f"{n:32s} {doc}")
        return 0
    if not args.dir:
        ap.error("--dir is required")
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    counts = {True: 0, False: 0, None: 0}
    t0 = time.monotonic()

    def report(res):
        name, ok, msg = res
        counts[ok] += 1
        tag = {True: "PASS", False: "FAIL", None: "SKIP"}[ok]
        print(f"{tag} {name}" + (f": {msg}" if msg else ""), flush=True)
    try:
        run_checks(args.dir, args.nonroot_uid, only, args.other_dir, args.timeout, args.keep, report,
                   args.require_fallocate)
    except ValueError as e:
        ap.error(str(e))
    except SkipAll as e:
        print(f"SKIP posix_checks: {e}")
        return EXIT_SKIP
    total = sum(counts.values())
    print(f"{total} checks: {counts[True]} passed, {counts[False]} failed, {counts[None]} skipped "
          f"({time.monotonic() - t0:.1f} s, {args.dir})")
    if counts[False]:
        return 1
    return 0 if counts[True] else EXIT_SKIP


if __name__ == "__main__":
    sys.exit(main())
