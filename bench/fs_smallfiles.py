#!/usr/bin/env python3
"""Small-file phases for bench/fs_bench.sh, each timed on its own:

    fs_smallfiles.py DIR COUNT PHASE [PER_DIR]

PHASE is one of
  create  create COUNT files of 4 KiB (O_CREAT|O_EXCL, one write, close)
  stat    stat every file (and check its size)
  read    open, read and close every file (and check its bytes)
  unlink  remove every file (then the directories, untimed)
The files are DIR/small/NNNNNNN, or DIR/small/dDDDD/NNNNNNN with PER_DIR files per
directory when PER_DIR > 0. Each file holds its own number, so a read that returns another
file's bytes is caught. Prints one line: `PHASE ops=N seconds=S ops_per_s=R`.
Exit status 1 if any check fails.
"""

import os
import sys
import time


def content(i):
    return (b"%08d" % i) * 512  # 4096 bytes


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    top = os.path.join(sys.argv[1], "small")
    count = int(sys.argv[2])
    phase = sys.argv[3]
    per_dir = int(sys.argv[4]) if len(sys.argv) == 5 else 0

    def dir_of(i):
        return os.path.join(top, "d%04d" % (i // per_dir)) if per_dir > 0 else top

    paths = [os.path.join(dir_of(i), "%07d" % i) for i in range(count)]
    dirs = sorted({dir_of(i) for i in range(count)})
    bad = 0
    if phase == "create":
        os.makedirs(top, exist_ok=True)
        for d in dirs:
            os.makedirs(d, exist_ok=True)
    t0 = time.monotonic()
    if phase == "create":
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
        for i, p in enumerate(paths):
            fd = os.open(p, flags, 0o644)
            try:
                data = content(i)
                if os.write(fd, data) != len(data):
                    bad += 1
            finally:
                os.close(fd)
    elif phase == "stat":
        for p in paths:
            if os.stat(p).st_size != 4096:
                bad += 1
    elif phase == "read":
        for i, p in enumerate(paths):
            fd = os.open(p, os.O_RDONLY)
            try:
                if os.read(fd, 8192) != content(i):
                    bad += 1
            finally:
                os.close(fd)
    elif phase == "unlink":
        for p in paths:
            os.unlink(p)
    else:
        sys.exit(f"fs_smallfiles: unknown phase {phase!r}")
    dt = time.monotonic() - t0
    if phase == "unlink":
        for d in dirs:
            if d != top:
                os.rmdir(d)
        os.rmdir(top)
    if bad:
        print(f"fs_smallfiles: {phase}: {bad} of {count} files had the wrong size or bytes", file=sys.stderr)
        sys.exit(1)
    print(f"{phase} ops={count} seconds={dt:.3f} ops_per_s={count / dt if dt > 0 else 0:.1f}")


if __name__ == "__main__":
    main()
