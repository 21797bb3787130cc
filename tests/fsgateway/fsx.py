#!/usr/bin/env python3
"""fsx-style random operation tester for ringstore-fs: one seeded op sequence, two trees.

    /usr/bin/python3 tests/fsgateway/fsx.py --a DIR_UNDER_TEST --b REFERENCE_DIR
        [--ops 100000] [--seed S] [--files 16] [--max-size 4M] [--check-every 1]
        [--full-every 10000] [--progress-every 10000] [--keep]
        [--self-test-corrupt {flip,size,mode,extra}] [--corrupt-at N]

The same random sequence runs on a fresh subdirectory of --a (the file system under test,
e.g. a ringstore-fs mount) and of --b (a reference, e.g. a local directory): creates and
writes at random offsets (1 B .. 256 KiB, some straddling 1 MiB chunk boundaries, some past
EOF leaving holes), appends, truncates up and down, reads of random ranges, renames of files
and small directories (also over existing entries), unlink, mkdir/rmdir, hard links,
symlinks, chmod, utime, and operations on up to 4 file descriptors held open across
renames and unlinks (pwrite, pread, ftruncate, fsync). Every operation must give the same
result on both trees (the same errno when it fails, the same bytes when it reads). After
every op (or every --check-every ops) the entries the ops touched are compared: type, mode
bits, st_nlink, size, symlink target, directory listing, content (the written ranges, head,
tail and random samples; all of it for files up to 256 KiB), and mtime where it was set by
utime and not changed since. Every --full-every ops and at the end the whole trees are
compared (every byte, and which names are hard links of one another).

The op sequence depends only on the seed and on the reference tree's state, so a seed replays
the same sequence. On the first divergence it prints the seed, the op number, the last 20 ops
and the difference, and exits 1. Exit 0 when clean, 2 on usage errors, 3 when
--self-test-corrupt's deliberate corruption of tree A went unnoticed.

--self-test-corrupt proves the checker can fail: right after op --corrupt-at (default ops/2),
or the first later op that touched something suitable, it changes tree A behind the op
sequence's back where that op worked, the way a gateway bug would: flip a byte inside the
range just written (flip), grow the file by a byte (size), flip a mode bit (mode), or add a
file to a directory just changed (extra). The run must then end in a divergence (exit 1);
exit 3 says the corruption went unnoticed.
"""

import argparse
import collections
import errno
import hashlib
import os
import random
import shutil
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from posix_suite.base import pread_all, pwrite_all, write_all  # noqa: E402  (a zero-byte write raises)

MiB = 1 << 20
CHUNK = MiB
NSLOTS = 4
MAX_DIRS = 8
MAX_PARENT_DEPTH = 3
SMALL_FILE = 256 * 1024   # touched files up to this size are compared in full
SAMPLE = 4096
FILE_MODES = [0o644, 0o600, 0o640, 0o755, 0o700, 0o4755, 0o2755, 0o1644, 0o444, 0o400, 0o604]
DIR_MODES = [0o755, 0o700, 0o750, 0o1777, 0o2755, 0o775]
LINK_NAMES = ["l0", "l1", "l2", "l3"]


class Divergence(Exception):
    pass


def parse_size(s):
    s = s.strip().upper()
    mult = 1
    for suf, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if s.endswith(suf) or s.endswith(suf + "IB") or s.endswith(suf + "B"):
            mult = m
            s = s[:s.index(suf)]
            break
    return int(s) * mult


def ename(e):
    return errno.errorcode.get(e, str(e))


def outcome(fn, *a):
    try:
        return ("ok", fn(*a))
    except OSError as e:
        return ("err", ename(e.errno))


def summ(r):
    kind, v = r
    if kind == "err":
        return v
    if v is None:
        return "ok"
    if isinstance(v, (bytes, bytearray)):
        return f"ok ({len(v)} bytes)"
    return f"ok {v}"


def first_diff(a, b):
    n = min(len(a), len(b))
    for base in range(0, n, 4096):
        if a[base:base + 4096] != b[base:base + 4096]:
            return next(i for i in range(base, min(base + 4096, n)) if a[i] != b[i])
    return None if len(a) == len(b) else n


def parent(rel):
    return os.path.dirname(rel)


def join(d, n):
    return f"{d}/{n}" if d else n


class Tree:
    def __init__(self, label, root, idx):
        self.label, self.root, self.idx = label, root, idx

    def p(self, rel):
        return self.root + "/" + rel if rel else self.root


class Fsx:
    def __init__(self, args, a_root, b_root, out=sys.stdout):
        self.args = args
        self.out = out
        self.rng = random.Random(args.seed)
        # A separate stream for the comparison's random samples, so that --check-every and
        # friends never change the op sequence.
        self.crng = random.Random(args.seed * 1000003 + 17)
        self.A = Tree("A", a_root, 0)
        self.B = Tree("B", b_root, 1)
        self.slots = [None] * NSLOTS      # [fd on A, fd on B, path when opened]
        self.marks = {}                   # B st_ino -> mtime_ns set by utime, unchanged since
        self.history = collections.deque(maxlen=20)
        self.seq_hash = hashlib.sha256()  # of every op line: equal digests = same sequence
        self.touched = {}                 # rel -> deep (bool)
        self.touched_ranges = collections.defaultdict(list)
        self.touched_slots = set()
        self.entries = None               # cached scan of B: rel -> 'f' | 'd' | 'l' | 'o'
        self._existing_of, self._existing = None, {}   # existing() lists cached per scan
        self.n = 0
        self.file_names = [f"f{i}" for i in range(args.files)]
        self.dir_names = [f"d{i}" for i in range(6)]
        self.max_size = args.max_size
        self.corrupted = None
        self.stats = collections.Counter()

    # ------------------------------------------------------------------ reference state

    def scan(self):
        if self.entries is None:
            ents = {}
            stack = [""]
            while stack:
                d = stack.pop()
                with os.scandir(self.B.p(d)) as it:
                    for e in it:
                        rel = join(d, e.name)
                        if e.is_symlink():
                            ents[rel] = "l"
                        elif e.is_dir(follow_symlinks=False):
                            ents[rel] = "d"
                            stack.append(rel)
                        elif e.is_file(follow_symlinks=False):
                            ents[rel] = "f"
                        else:
                            ents[rel] = "o"
            self.entries = ents
        return self.entries

    def existing(self, kinds):
        ents = self.scan()
        if self._existing_of is not ents:
            self._existing_of, self._existing = ents, {}
        got = self._existing.get(kinds)
        if got is None:
            got = self._existing[kinds] = sorted(r for r, k in ents.items() if k in kinds)
        return got

    def dirs(self, max_depth=MAX_PARENT_DEPTH):
        return [""] + [d for d in self.existing("d") if d.count("/") < max_depth]

    def b_size(self, rel):
        """Size of a regular file in B (through symlinks); 0 for anything else, since a
        directory's st_size depends on the file system and must not steer the sequence."""
        try:
            st = os.stat(self.B.p(rel))
        except OSError:
            return 0
        return st.st_size if stat.S_ISREG(st.st_mode) else 0

    def new_name_path(self, names):
        return join(self.rng.choice(self.dirs()), self.rng.choice(names))

    def pick_file(self, create_ok=True):
        """An existing regular file (or symlink) mostly; sometimes a maybe-new name."""
        files = self.existing("f")
        links = self.existing("l")
        r = self.rng.random()
        if files and (r < 0.85 or not create_ok or len(files) >= 2 * self.args.files):
            if links and self.rng.random() < 0.05:
                return self.rng.choice(links)
            return self.rng.choice(files)
        return self.new_name_path(self.file_names)

    def pick_any(self):
        ents = self.existing("fdlo")
        if ents and self.rng.random() < 0.9:
            return self.rng.choice(ents)
        return self.new_name_path(self.file_names + self.dir_names + LINK_NAMES)

    def pick_len(self):
        r = self.rng.random()
        if r < 0.5:
            return self.rng.randint(1, 4096)
        if r < 0.85:
            return self.rng.randint(4097, 64 * 1024)
        return self.rng.randint(64 * 1024 + 1, 256 * 1024)

    def pick_write(self, size):
        ln = min(self.pick_len(), self.max_size)
        r = self.rng.random()
        if r < 0.35:
            off = self.rng.randint(0, max(0, min(size, self.max_size) - 1))
        elif r < 0.55:
            off = size
        elif r < 0.75 and self.max_size > CHUNK and ln > 1:
            k = self.rng.randint(1, max(1, (self.max_size - 1) // CHUNK))
            off = k * CHUNK - self.rng.randint(1, ln - 1)
        elif r < 0.9:
            off = size + self.rng.randint(1, 2 * MiB)
        else:
            off = self.rng.randint(0, self.max_size)
        off = max(0, min(off, self.max_size - ln))
        return off, ln

    def pick_trunc(self, size):
        r = self.rng.random()
        if r < 0.3:
            n = self.rng.randint(0, size)
        elif r < 0.5:
            n = size + self.rng.randint(1, MiB)
        elif r < 0.7:
            n = self.rng.randint(0, max(0, self.max_size // CHUNK)) * CHUNK + self.rng.randint(-3, 3)
        elif r < 0.8:
            n = 0
        else:
            n = self.rng.randint(0, self.max_size)
        return max(0, min(n, self.max_size))

    # ------------------------------------------------------------------ running one op

    def diverge(self, msg):
        raise Divergence(msg)

    def both(self, desc, fn, key=None):
        """Runs fn(tree) on A then B; their outcomes (ok + value, or errno) must be equal."""
        ra = outcome(fn, self.A)
        rb = outcome(fn, self.B)
        self.record(f"#{self.n} {desc} -> {summ(rb)}")
        ka = (ra[0], key(ra[1])) if key and ra[0] == "ok" else ra
        kb = (rb[0], key(rb[1])) if key and rb[0] == "ok" else rb
        if ka != kb:
            if ra[0] == rb[0] == "ok" and isinstance(ra[1], bytes):
                i = first_diff(ra[1], rb[1])
                self.diverge(f"{desc}: data differs: A {len(ra[1])} bytes, B {len(rb[1])} bytes, "
                             f"first difference at relative offset {i} "
                             f"(A {ra[1][i:i + 8].hex()}, B {rb[1][i:i + 8].hex()})")
            self.diverge(f"{desc}: A gave {summ(ra)}, B gave {summ(rb)}")
        self.stats["err" if rb[0] == "err" else "ok"] += 1
        return ra, rb

    def record(self, line):
        self.history.append(line)
        # fds differ from run to run; everything else in the line is the sequence itself
        self.seq_hash.update(line.split(" -> ok ")[0].encode() if line.startswith(f"#{self.n} open ") else line.encode())

    def touch(self, *rels, deep=False):
        for r in rels:
            self.touched[r] = self.touched.get(r, False) or deep

    def unmark(self, rel=None, fd=None):
        try:
            st = os.fstat(fd) if fd is not None else os.stat(self.B.p(rel))
        except OSError:
            return
        self.marks.pop(st.st_ino, None)

    def forget_if_last(self, rel):
        """Before a name goes away: if it is the inode's last link, drop its mtime mark (the
        inode number may be reused by a new file)."""
        try:
            st = os.lstat(self.B.p(rel))
        except OSError:
            return
        if stat.S_ISREG(st.st_mode) and st.st_nlink <= 1:
            self.marks.pop(st.st_ino, None)

    # ------------------------------------------------------------------ the ops

    def op_write(self):
        path = self.pick_file()
        off, ln = self.pick_write(self.b_size(path))
        data = self.rng.randbytes(ln)
        new = self.scan().get(path) != "f"  # created, or created through a symlink

        def fn(t):
            fd = os.open(t.p(path), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                pwrite_all(fd, data, off)
            finally:
                os.close(fd)
        self.both(f"write {path} off={off} len={ln}", fn)
        self.unmark(path)
        self.touch(path, parent(path))
        self.touched_ranges[path].append((off, ln))
        if new:
            self.entries = None

    def op_append(self):
        path = self.pick_file()
        size = self.b_size(path)
        ln = max(1, min(self.pick_len(), self.max_size - size))
        if size >= self.max_size:
            return self.op_truncate()
        data = self.rng.randbytes(ln)
        new = self.scan().get(path) != "f"  # created, or created through a symlink

        def fn(t):
            fd = os.open(t.p(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                write_all(fd, data)
                return os.fstat(fd).st_size
            finally:
                os.close(fd)
        self.both(f"append {path} len={ln}", fn)
        self.unmark(path)
        self.touch(path, parent(path))
        self.touched_ranges[path].append((size, ln))
        if new:
            self.entries = None

    def op_read(self):
        path = self.pick_file(create_ok=False) if self.existing("f") else self.pick_any()
        size = self.b_size(path)
        r = self.rng.random()
        ln = self.pick_len()
        if r < 0.2 and size > CHUNK:
            k = self.rng.randint(1, size // CHUNK)
            off = max(0, k * CHUNK - self.rng.randint(0, ln))
        elif r < 0.3:
            off = max(0, size - self.rng.randint(0, ln))
        else:
            off = self.rng.randint(0, size + 100)

        def fn(t):
            fd = os.open(t.p(path), os.O_RDONLY)
            try:
                return pread_all(fd, ln, off)
            finally:
                os.close(fd)
        self.both(f"read {path} off={off} len={ln}", fn)

    def op_truncate(self):
        path = self.pick_file(create_ok=False) if self.existing("f") else self.pick_any()
        size = self.b_size(path)
        n = self.pick_trunc(size)
        self.both(f"truncate {path} {size}->{n}", lambda t: os.truncate(t.p(path), n))
        self.unmark(path)
        self.touch(path)
        lo = min(size, n)
        self.touched_ranges[path].append((max(0, lo - 4096), 8192 + abs(n - size) % (256 * 1024)))

    def op_rename(self):
        r = self.rng.random()
        if r < 0.2 and self.existing("d"):
            src = self.rng.choice(self.existing("d"))
            if self.rng.random() < 0.6:
                dst = self.new_name_path(self.dir_names)
            else:
                dst = self.pick_any()
        else:
            src = self.pick_any()
            if self.rng.random() < 0.5:
                dst = self.new_name_path(self.file_names)
            else:
                dst = self.pick_any()
        src_kind = self.scan().get(src)
        self.forget_if_last(dst)
        _ra, rb = self.both(f"rename {src} -> {dst}", lambda t: os.rename(t.p(src), t.p(dst)))
        self.entries = None
        self.touch(src, dst, parent(src), parent(dst))
        if rb[0] == "ok" and src_kind == "d":
            self.touch(dst, deep=True)

    def op_unlink(self):
        path = self.pick_any()
        self.forget_if_last(path)
        self.both(f"unlink {path}", lambda t: os.unlink(t.p(path)))
        self.entries = None
        self.touch(path, parent(path))

    def op_mkdir(self):
        if len(self.existing("d")) >= MAX_DIRS:
            path = self.rng.choice(self.existing("fdlo"))  # exists: EEXIST
        else:
            path = self.new_name_path(self.dir_names)
        mode = self.rng.choice([0o755, 0o700, 0o777])
        self.both(f"mkdir {path} {mode:o}", lambda t: os.mkdir(t.p(path), mode))
        self.entries = None
        self.touch(path, parent(path))

    def op_rmdir(self):
        ds = self.existing("d")
        path = self.rng.choice(ds) if ds and self.rng.random() < 0.9 else self.pick_any()
        self.both(f"rmdir {path}", lambda t: os.rmdir(t.p(path)))
        self.entries = None
        self.touch(path, parent(path))

    def op_link(self):
        src = self.pick_file(create_ok=False) if self.existing("f") else self.pick_any()
        dst = self.new_name_path(self.file_names) if self.rng.random() < 0.8 else self.pick_any()
        self.both(f"link {src} -> {dst}", lambda t: os.link(t.p(src), t.p(dst)))
        self.entries = None
        self.touch(src, dst, parent(dst))

    def op_symlink(self):
        target = self.rng.choice(self.file_names[:4] + self.dir_names[:2] + LINK_NAMES[:2] +
                                 ["d0/f1", "missing", "d1/d0"])
        path = self.new_name_path(LINK_NAMES) if self.rng.random() < 0.9 else self.pick_any()
        self.both(f"symlink {path} -> {target}", lambda t: os.symlink(target, t.p(path)))
        self.entries = None
        self.touch(path, parent(path))

    def op_chmod(self):
        path = self.pick_any()
        kind = self.scan().get(path)
        mode = self.rng.choice(DIR_MODES if kind == "d" else FILE_MODES)
        self.both(f"chmod {path} {mode:o}", lambda t: os.chmod(t.p(path), mode))
        self.touch(path)

    def op_utime(self):
        path = self.pick_file(create_ok=False) if self.existing("f") else self.pick_any()
        at = self.rng.randint(10**18, 1_800_000_000 * 10**9)
        mt = self.rng.randint(10**18, 1_800_000_000 * 10**9)
        if self.rng.random() < 0.2:
            mt -= mt % 10**9
        _ra, rb = self.both(f"utime {path} atime={at} mtime={mt}",
                            lambda t: os.utime(t.p(path), ns=(at, mt)))
        if rb[0] == "ok":
            try:
                st = os.stat(self.B.p(path))
                if stat.S_ISREG(st.st_mode):
                    self.marks[st.st_ino] = mt
            except OSError:
                pass
        self.touch(path)

    def op_stat(self):
        path = self.pick_any()
        self.touch(path)
        self.record(f"#{self.n} compare {path}")

    # fd slots: files held open across other ops (renames, unlinks)

    def op_open(self):
        i = self.rng.randrange(NSLOTS)
        if self.slots[i] is not None:
            return self.op_close(i)
        path = self.pick_file(create_ok=True)
        new = self.scan().get(path) != "f"  # created, or created through a symlink
        ra, rb = self.both(f"open slot{i} {path} O_RDWR|O_CREAT",
                           lambda t: os.open(t.p(path), os.O_RDWR | os.O_CREAT, 0o644),
                           key=lambda fd: None)
        if rb[0] == "ok":
            self.slots[i] = [ra[1], rb[1], path]
        if new:
            self.entries = None
        self.touch(path, parent(path))

    def op_close(self, i=None):
        if i is None:
            used = [k for k, s in enumerate(self.slots) if s]
            if not used:
                return self.op_open()
            i = self.rng.choice(used)
        s = self.slots[i]
        self.cmp_slot(i)
        try:
            if os.fstat(s[1]).st_nlink == 0:
                self.unmark(fd=s[1])
        except OSError:
            pass
        self.both(f"close slot{i} ({s[2]})", lambda t: os.close(s[t.idx]))
        self.slots[i] = None
        self.touched_slots.discard(i)

    def slot(self):
        used = [k for k, s in enumerate(self.slots) if s]
        return self.rng.choice(used) if used else None

    def op_fd_write(self):
        i = self.slot()
        if i is None:
            return self.op_open()
        s = self.slots[i]
        off, ln = self.pick_write(os.fstat(s[1]).st_size)
        data = self.rng.randbytes(ln)
        self.both(f"pwrite slot{i} ({s[2]}) off={off} len={ln}", lambda t: pwrite_all(s[t.idx], data, off))
        self.unmark(fd=s[1])
        self.touched_slots.add(i)
        self.touched_ranges[("slot", i)].append((off, ln))

    def op_fd_read(self):
        i = self.slot()
        if i is None:
            return self.op_open()
        s = self.slots[i]
        size = os.fstat(s[1]).st_size
        ln = self.pick_len()
        off = self.rng.randint(0, size + 10)
        self.both(f"pread slot{i} ({s[2]}) off={off} len={ln}", lambda t: pread_all(s[t.idx], ln, off))

    def op_fd_truncate(self):
        i = self.slot()
        if i is None:
            return self.op_open()
        s = self.slots[i]
        size = os.fstat(s[1]).st_size
        n = self.pick_trunc(size)
        self.both(f"ftruncate slot{i} ({s[2]}) {size}->{n}", lambda t: os.ftruncate(s[t.idx], n))
        self.unmark(fd=s[1])
        self.touched_slots.add(i)
        self.touched_ranges[("slot", i)].append((max(0, min(size, n) - 4096), 8192))

    def op_fsync(self):
        i = self.slot()
        if i is None:
            return self.op_open()
        s = self.slots[i]
        self.both(f"fsync slot{i} ({s[2]})", lambda t: os.fsync(s[t.idx]))
        self.touched_slots.add(i)

    OPS = [("write", 20), ("append", 5), ("read", 12), ("truncate", 6), ("rename", 7),
           ("unlink", 4), ("mkdir", 3), ("rmdir", 3), ("link", 3), ("symlink", 1),
           ("chmod", 3), ("utime", 3), ("stat", 2), ("open", 3), ("close", 2),
           ("fd_write", 6), ("fd_read", 4), ("fd_truncate", 1), ("fsync", 1)]

    # ------------------------------------------------------------------ comparison

    def lstat2(self, rel, follow=False):
        f = os.stat if follow else os.lstat
        return outcome(f, self.A.p(rel)), outcome(f, self.B.p(rel))

    def cmp_stat(self, what, a, b):
        if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode):
            self.diverge(f"{what}: file type differs: A {stat.filemode(a.st_mode)}, B {stat.filemode(b.st_mode)}")
        if stat.S_IMODE(a.st_mode) != stat.S_IMODE(b.st_mode):
            self.diverge(f"{what}: mode differs: A {stat.S_IMODE(a.st_mode):#o}, B {stat.S_IMODE(b.st_mode):#o}")
        isdir = stat.S_ISDIR(b.st_mode)
        if a.st_nlink != b.st_nlink and not (isdir and self.args.ignore_dir_nlink):
            self.diverge(f"{what}: st_nlink differs: A {a.st_nlink}, B {b.st_nlink}")
        if not isdir and a.st_size != b.st_size:
            self.diverge(f"{what}: size differs: A {a.st_size}, B {b.st_size}")
        if stat.S_ISREG(b.st_mode) and b.st_ino in self.marks:
            g = self.args.mtime_granularity_ns
            want = self.marks[b.st_ino]
            if a.st_mtime_ns // g != want // g or b.st_mtime_ns // g != want // g:
                self.diverge(f"{what}: mtime set by utime to {want}: A has {a.st_mtime_ns}, B has {b.st_mtime_ns}")

    def cmp_content_fds(self, what, fa, fb, size, ranges=(), full=False):
        if full or size <= SMALL_FILE:
            spans = [(o, min(CHUNK, size - o)) for o in range(0, size, CHUNK)] or [(0, 1)]
        else:
            spans = [(0, SAMPLE), (max(0, size - SAMPLE), SAMPLE)]
            spans += [(self.crng.randrange(size), SAMPLE) for _ in range(2)]
            for off, ln in ranges:
                spans.append((max(0, off - 16), ln + 32))
            if self.crng.random() < 1 / 128:
                spans = [(o, min(CHUNK, size - o)) for o in range(0, size, CHUNK)]
        for off, ln in spans:
            ba = pread_all(fa, ln, off)
            bb = pread_all(fb, ln, off)
            if ba != bb:
                i = first_diff(ba, bb)
                self.diverge(f"{what}: content differs at offset {off + i} (compared {off}+{ln}): "
                             f"A {ba[i:i + 8].hex() or 'EOF'}, B {bb[i:i + 8].hex() or 'EOF'} "
                             f"(A returned {len(ba)} bytes, B {len(bb)})")

    def cmp_content(self, rel, size, ranges=(), full=False):
        ra = outcome(os.open, self.A.p(rel), os.O_RDONLY)
        rb = outcome(os.open, self.B.p(rel), os.O_RDONLY)
        try:
            if ra[0] != rb[0] or (ra[0] == "err" and ra[1] != rb[1]):
                self.diverge(f"{rel}: open for comparison: A {summ(ra)}, B {summ(rb)}")
            if ra[0] == "ok":
                self.cmp_content_fds(rel, ra[1], rb[1], size, ranges, full)
        finally:
            for r in (ra, rb):
                if r[0] == "ok":
                    os.close(r[1])

    def cmp_entry(self, rel, deep=False, full=False):
        sa, sb = self.lstat2(rel)
        if sa[0] != sb[0] or (sa[0] == "err" and sa[1] != sb[1]):
            self.diverge(f"lstat {rel or '.'}: A {summ(sa) if sa[0] == 'err' else 'exists'}, "
                         f"B {summ(sb) if sb[0] == 'err' else 'exists'}")
        if sa[0] == "err":
            return
        a, b = sa[1], sb[1]
        self.cmp_stat(rel or ".", a, b)
        if stat.S_ISLNK(b.st_mode):
            la, lb = outcome(os.readlink, self.A.p(rel)), outcome(os.readlink, self.B.p(rel))
            if la != lb:
                self.diverge(f"readlink {rel}: A {la}, B {lb}")
            fa, fb = self.lstat2(rel, follow=True)
            if (fa[0], fa[1] if fa[0] == "err" else None) != (fb[0], fb[1] if fb[0] == "err" else None):
                self.diverge(f"stat through symlink {rel}: A {summ(fa)}, B {summ(fb)}")
            if fb[0] == "ok":
                self.cmp_stat(f"{rel} (followed)", fa[1], fb[1])
                if stat.S_ISREG(fb[1].st_mode):
                    self.cmp_content(rel, fb[1].st_size, self.touched_ranges.get(rel, ()), full)
        elif stat.S_ISREG(b.st_mode):
            self.cmp_content(rel, b.st_size, self.touched_ranges.get(rel, ()), full)
        elif stat.S_ISDIR(b.st_mode):
            la, lb = outcome(os.listdir, self.A.p(rel)), outcome(os.listdir, self.B.p(rel))
            la = (la[0], sorted(la[1])) if la[0] == "ok" else la
            lb = (lb[0], sorted(lb[1])) if lb[0] == "ok" else lb
            if la != lb:
                if la[0] == lb[0] == "ok":
                    self.diverge(f"listing of {rel or '.'} differs: only in A {sorted(set(la[1]) - set(lb[1]))}, "
                                 f"only in B {sorted(set(lb[1]) - set(la[1]))}")
                self.diverge(f"listdir {rel or '.'}: A {summ(la)}, B {summ(lb)}")
            if deep:
                for n in lb[1]:
                    self.cmp_entry(join(rel, n), deep=True, full=full)

    def cmp_slot(self, i, full=False):
        s = self.slots[i]
        a, b = os.fstat(s[0]), os.fstat(s[1])
        self.cmp_stat(f"slot{i} (opened as {s[2]})", a, b)
        self.cmp_content_fds(f"slot{i} (opened as {s[2]})", s[0], s[1], b.st_size,
                             self.touched_ranges.get(("slot", i), ()), full)

    def check_touched(self):
        for rel, deep in sorted(self.touched.items()):
            self.cmp_entry(rel, deep=deep)
        for i in sorted(self.touched_slots):
            if self.slots[i] is not None:
                self.cmp_slot(i)
        self.touched.clear()
        self.touched_slots.clear()
        self.touched_ranges.clear()

    def walk(self, tree):
        out = {}
        stack = [""]
        while stack:
            d = stack.pop()
            with os.scandir(tree.p(d)) as it:
                for e in it:
                    rel = join(d, e.name)
                    st = e.stat(follow_symlinks=False)
                    out[rel] = st
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(rel)
        return out

    def check_all(self):
        wa, wb = self.walk(self.A), self.walk(self.B)
        if set(wa) != set(wb):
            self.diverge(f"trees differ: only in A {sorted(set(wa) - set(wb))}, only in B {sorted(set(wb) - set(wa))}")
        self.cmp_entry("", deep=False)
        for rel in sorted(wb):
            self.cmp_entry(rel, full=True)

        def groups(w):
            g = collections.defaultdict(set)
            for rel, st in w.items():
                if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                    g[st.st_ino].add(rel)
            return sorted(sorted(v) for v in g.values())
        ga, gb = groups(wa), groups(wb)
        if ga != gb:
            self.diverge(f"hard link groups differ: A {ga}, B {gb}")
        for i, s in enumerate(self.slots):
            if s is not None:
                self.cmp_slot(i, full=True)
        self.touched.clear()
        self.touched_slots.clear()
        self.touched_ranges.clear()

    # ------------------------------------------------------------------ self test

    def corrupt(self):
        """Changes tree A behind the op sequence's back, the way a gateway bug would: in the
        file (or the directory) the op just run touched, so the checks after this op must
        see it. Returns False when this op touched nothing suitable (try after the next)."""
        kind = self.args.self_test_corrupt
        r = random.Random(self.args.seed + self.n)
        if kind == "extra":
            dirs = [rel for rel in sorted(self.touched)
                    if os.path.isdir(self.B.p(rel)) and not os.path.islink(self.B.p(rel))]
            if not dirs:
                return False
            d = r.choice(dirs)
            with open(self.A.p(join(d, "zz-corrupt-extra")), "wb") as f:
                f.write(b"not in B")
            self.corrupted = f"added file {join(d, 'zz-corrupt-extra')} to A"
            return True
        cands = []
        for rel, ranges in sorted((k, v) for k, v in self.touched_ranges.items() if isinstance(k, str)):
            try:
                st = os.lstat(self.A.p(rel))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                cands.append((rel, ranges, st))
        if not cands:
            return False
        rel, ranges, st = r.choice(cands)
        p = self.A.p(rel)
        if kind == "flip":
            off, ln = r.choice(ranges)
            off = min(r.randrange(off, off + max(1, ln)), st.st_size - 1)
            fd = os.open(p, os.O_RDWR)
            try:
                b = os.pread(fd, 1, off)
                os.pwrite(fd, bytes([b[0] ^ 0xFF]), off)
            finally:
                os.close(fd)
            self.corrupted = f"flipped the byte at offset {off} of {rel} (size {st.st_size}) in A"
        elif kind == "size":
            os.truncate(p, st.st_size + 1)
            self.corrupted = f"grew {rel} in A from {st.st_size} to {st.st_size + 1} bytes"
        elif kind == "mode":
            m = stat.S_IMODE(st.st_mode)
            os.chmod(p, m ^ 0o010)
            self.corrupted = f"changed the mode of {rel} in A from {m:#o} to {m ^ 0o010:#o}"
        return True

    # ------------------------------------------------------------------ main loop

    def log(self, msg):
        try:
            print(msg, file=self.out, flush=True)
        except BrokenPipeError:
            pass

    def run(self):
        a = self.args
        names = [n for n, _w in self.OPS]
        weights = [w for _n, w in self.OPS]
        corrupt_at = a.corrupt_at if a.corrupt_at is not None else a.ops // 2
        t0 = tlast = time.monotonic()
        for self.n in range(1, a.ops + 1):
            op = self.rng.choices(names, weights)[0]
            getattr(self, "op_" + op)()
            self.stats[op] += 1
            if a.self_test_corrupt and self.corrupted is None and self.n >= corrupt_at:
                if self.corrupt():
                    self.log(f"fsx: self-test: after op {self.n} {self.corrupted}")
            if self.n % a.check_every == 0:
                self.check_touched()
            if a.full_every and self.n % a.full_every == 0:
                self.check_all()
            if a.progress_every and self.n % a.progress_every == 0:
                now = time.monotonic()
                size = sum(outcome(os.lstat, self.B.p(f))[1].st_size for f in self.existing("f")
                           if outcome(os.lstat, self.B.p(f))[0] == "ok")
                self.log(f"fsx: op {self.n}/{a.ops}  {a.progress_every / max(now - tlast, 1e-9):.0f} ops/s "
                         f"(avg {self.n / max(now - t0, 1e-9):.0f})  {len(self.existing('f'))} files "
                         f"{len(self.existing('d'))} dirs {size / MiB:.1f} MiB in B")
                tlast = now
        self.n = a.ops
        self.check_touched()
        for i, s in enumerate(self.slots):
            if s is not None:
                self.op_close(i)
        self.check_all()
        return time.monotonic() - t0

    def close_slots(self):
        for s in self.slots:
            if s is not None:
                for fd in s[:2]:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
        self.slots = [None] * NSLOTS


def rmtree(path):
    def onerror(_fn, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
        except OSError:
            pass
    if os.path.lexists(path):
        shutil.rmtree(path, onerror=onerror)
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="directory under test (e.g. in a ringstore-fs mount)")
    ap.add_argument("--b", required=True, help="reference directory (e.g. on tmpfs or ext4)")
    ap.add_argument("--ops", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=None, help="default: random, printed")
    ap.add_argument("--files", type=int, default=16,
                    help="file names f0..f<N-1> (any directory may hold them); new files stop "
                         "being created at 2N regular-file names (default 16)")
    ap.add_argument("--max-size", type=parse_size, default=4 * MiB, help="largest file size (default 4M)")
    ap.add_argument("--check-every", type=int, default=1, help="compare touched entries every N ops")
    ap.add_argument("--full-every", type=int, default=10000,
                    help="compare the whole trees every N ops (0: only at the end)")
    ap.add_argument("--progress-every", type=int, default=10000)
    ap.add_argument("--ignore-dir-nlink", action="store_true",
                    help="do not compare directories' st_nlink (for file systems that report 1)")
    ap.add_argument("--mtime-granularity-ns", type=int, default=1,
                    help="compare utime-set mtimes at this granularity (default 1 = exact)")
    ap.add_argument("--keep", action="store_true", help="keep the two work directories")
    ap.add_argument("--self-test-corrupt", choices=["flip", "size", "mode", "extra"],
                    help="deliberately corrupt tree A mid-run; the run must then fail")
    ap.add_argument("--corrupt-at", type=int, default=None, help="op number for --self-test-corrupt")
    return ap


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    if args.ops < 0 or args.files < 1 or args.max_size < 2 or args.check_every < 1:
        ap.error("--ops >= 0, --files >= 1, --max-size >= 2, --check-every >= 1")
    for d in (args.a, args.b):
        if not os.path.isdir(d):
            ap.error(f"{d} is not a directory")
    tag = f"fsx.{args.seed}.{os.getpid()}"
    a_root, b_root = os.path.join(args.a, tag), os.path.join(args.b, tag)
    if os.path.realpath(a_root) == os.path.realpath(b_root):
        ap.error("--a and --b must be different directories")
    os.mkdir(a_root, 0o755)
    os.mkdir(b_root, 0o755)
    old_umask = os.umask(0o022)
    fsx = Fsx(args, a_root, b_root)
    fsx.log(f"fsx: seed {args.seed}, {args.ops} ops, A={a_root} B={b_root}")
    rc = 0
    try:
        try:
            secs = fsx.run()
        except Divergence as e:
            fsx.log(f"fsx: DIVERGENCE at op {fsx.n} (seed {args.seed})")
            fsx.log(f"  difference: {e}")
            if fsx.corrupted:
                fsx.log(f"  (self-test: {fsx.corrupted})")
            fsx.log("  last ops (result shown is B's):")
            for h in fsx.history:
                fsx.log(f"    {h}")
            fsx.log(f"  reproduce: {os.path.basename(sys.argv[0]) or 'fsx.py'} --a DIR --b DIR --seed {args.seed} "
                    f"--ops {fsx.n} --files {args.files} --max-size {args.max_size} --check-every 1"
                    + (f" --self-test-corrupt {args.self_test_corrupt} --corrupt-at {args.corrupt_at or args.ops // 2}"
                       if args.self_test_corrupt else "")
                    + ("" if args.keep else "   (add --keep to keep the trees)"))
            rc = 1
        else:
            ops = fsx.stats
            n_ok, n_err = ops.pop("ok", 0), ops.pop("err", 0)
            fsx.log(f"fsx: OK: {args.ops} ops in {secs:.1f} s ({args.ops / max(secs, 1e-9):.0f} ops/s), "
                    f"seed {args.seed}, sequence digest {fsx.seq_hash.hexdigest()[:16]}; "
                    f"{n_ok} calls succeeded, {n_err} failed identically; "
                    + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
            if args.self_test_corrupt:
                fsx.log(f"fsx: SELF-TEST FAILED: the corruption ({fsx.corrupted or 'none made'}) went unnoticed")
                rc = 3
    finally:
        fsx.close_slots()
        os.umask(old_umask)
        if args.keep:
            fsx.log(f"fsx: kept {a_root} and {b_root}")
        else:
            rmtree(a_root)
            rmtree(b_root)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
