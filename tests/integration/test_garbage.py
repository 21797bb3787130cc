#!/usr/bin/env python3
"""A node survives 1000 connections that send it garbage, answers broken framing with an
ERROR frame and a close, and keeps serving real clients afterwards.

Each connection picks one class of garbage (see CLASSES): pure random bytes, a valid magic
followed by junk, a header with an unsupported version, a header claiming a body larger
than the 64 MiB + 64 KiB limit, a valid header with a wrong checksum, a truncated frame, a
properly framed HELLO whose body is not msgpack (or is msgpack of the wrong shape), a
first frame that is not HELLO, a HELLO for another cluster, and, after a good handshake, a
run of well-framed requests with malformed bodies followed by a real GET on the same
connection. Connections that expect a reply read it and check it strictly (one ERROR frame
with the right code and a valid checksum, then EOF); others vanish without reading, some
with a RST.

After all connections: the node is alive, its open fd count is back to where it started
(no leaked connections), the CLI can put and get, and SIGTERM stops it with exit 0.

The frame checksum is XXH3-64, which the stdlib lacks. It comes from the `xxhash` module if
installed, else from libxxhash through ctypes (the node links it). If neither is there, the
classes that need a correct checksum are replaced by wrong-checksum frames, with a note.

Run: python3 tests/integration/test_garbage.py --bin-dir build
"""

import collections
import concurrent.futures
import ctypes
import ctypes.util
import hashlib
import os
import random
import socket
import struct
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EXIT_OK, TestFailure, check, expect_rc, log, wait_until  # noqa: E402

CONNECTIONS = 1000
BATCHES = 4                 # CLI health check between batches
PARALLEL = 8                # connections in flight at once
SOCKET_TIMEOUT_S = 10.0     # every connect/send/recv is bounded by this
MAX_JUNK = 16 << 10         # junk per connection; sent in one send() so the node reads it at once

MAGIC = 0x52535452
VERSION = 1
HEADER = struct.Struct("<IBBHQII")  # magic, version, flags, kind, request_id, body_len, checksum
MAX_BODY = (64 << 20) + (64 << 10)  # kMaxFrameBodyBytes
K_HELLO, K_HELLO_REPLY, K_ERROR, K_ACK = 1, 2, 3, 4
K_PUT, K_GET, K_DEL, K_STAT, K_TXN, K_GET_REPLY, K_STAT_REPLY = 10, 11, 12, 13, 14, 20, 21
# dht/status.h
C_NOT_FOUND, C_CORRUPTION, C_PROTOCOL, C_REFUSED, C_TOO_LARGE = 1, 2, 8, 9, 11
CLUSTER_ID = "ringstore"
PROBE_KEY = "garbage-probe"


# ---- XXH3-64 ---------------------------------------------------------------------------------

def _load_xxh3():
    if os.environ.get("RINGSTORE_IT_NO_XXH3"):  # to exercise the fallback
        return None, "disabled by RINGSTORE_IT_NO_XXH3"
    try:
        import xxhash  # type: ignore
        return (lambda data, seed=0: xxhash.xxh3_64_intdigest(data, seed=seed)), "xxhash module"
    except ImportError:
        pass
    for name in (ctypes.util.find_library("xxhash"), "libxxhash.so.0", "libxxhash.so"):
        if not name:
            continue
        try:
            fn = ctypes.CDLL(name).XXH3_64bits_withSeed
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_uint64
        fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
        f = (lambda fn: lambda data, seed=0: fn(bytes(data), len(data), seed))(fn)
        return f, f"ctypes {name}"
    return None, "none"


XXH3, XXH3_SOURCE = _load_xxh3()
if XXH3 is not None and XXH3(b"") != 0x2D06800538D394C2:  # the reference test vector
    XXH3, XXH3_SOURCE = None, f"{XXH3_SOURCE} (failed its self-test)"


def frame_checksum(header20, body):
    return XXH3(body, XXH3(header20, 0)) & 0xFFFFFFFF


def frame(kind, rid, body, *, checksum=None, body_len=None, magic=MAGIC, version=VERSION, flags=0):
    """A frame with a correct checksum unless `checksum` is given (then that value is used)."""
    n = len(body) if body_len is None else body_len
    prefix = HEADER.pack(magic, version, flags, kind, rid, n, 0)[:20]
    if checksum is None:
        check(XXH3 is not None, "internal: correct checksum asked for without XXH3")
        checksum = frame_checksum(prefix, body)
    return prefix + struct.pack("<I", checksum) + body


def wrong_checksum(kind, rid, body, rnd):
    if XXH3 is None:
        return frame(kind, rid, body, checksum=rnd.getrandbits(32))
    prefix = HEADER.pack(MAGIC, VERSION, 0, kind, rid, len(body), 0)[:20]
    good = frame_checksum(prefix, body)
    return frame(kind, rid, body, checksum=good ^ rnd.randrange(1, 1 << 32))


# ---- a little msgpack ---------------------------------------------------------------------------

def mp_uint(v):
    if v < 0x80:
        return bytes([v])
    if v < 1 << 8:
        return b"\xcc" + struct.pack(">B", v)
    if v < 1 << 16:
        return b"\xcd" + struct.pack(">H", v)
    if v < 1 << 32:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def mp_str(s):
    b = s.encode() if isinstance(s, str) else s
    if len(b) < 32:
        return bytes([0xA0 | len(b)]) + b
    if len(b) < 1 << 8:
        return b"\xd9" + struct.pack(">B", len(b)) + b
    return b"\xda" + struct.pack(">H", len(b)) + b


def mp_bin(b):
    if len(b) < 1 << 8:
        return b"\xc4" + struct.pack(">B", len(b)) + b
    if len(b) < 1 << 16:
        return b"\xc5" + struct.pack(">H", len(b)) + b
    return b"\xc6" + struct.pack(">I", len(b)) + b


def mp_array(items):
    n = len(items)
    head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
    return head + b"".join(items)


def hello_body(cluster_id=CLUSTER_ID, version=VERSION):
    return mp_array([mp_str(cluster_id), mp_uint(version), mp_array([]), mp_str("")])


class MpError(Exception):
    pass


def mp_decode(buf):
    """Decodes one msgpack value that must fill buf exactly (enough for replies we check)."""
    v, off = _mp(buf, 0)
    if off != len(buf):
        raise MpError(f"{len(buf) - off} trailing bytes")
    return v


def _mp(b, o):
    if o >= len(b):
        raise MpError("truncated")
    t = b[o]
    o += 1

    def take(n):
        if o + n > len(b):
            raise MpError("truncated")
        return b[o:o + n]

    if t < 0x80:
        return t, o
    if 0x90 <= t <= 0x9F or t in (0xDC, 0xDD):
        if t <= 0x9F:
            n = t & 0x0F
        else:
            w = 2 if t == 0xDC else 4
            n = int.from_bytes(take(w), "big")
            o += w
        out = []
        for _ in range(n):
            v, o = _mp(b, o)
            out.append(v)
        return out, o
    if 0xA0 <= t <= 0xBF or t in (0xD9, 0xDA, 0xDB):
        if t <= 0xBF:
            n = t & 0x1F
        else:
            w = {0xD9: 1, 0xDA: 2, 0xDB: 4}[t]
            n = int.from_bytes(take(w), "big")
            o += w
        s = take(n)
        return s.decode("utf-8", errors="replace"), o + n
    if t in (0xC4, 0xC5, 0xC6):
        w = {0xC4: 1, 0xC5: 2, 0xC6: 4}[t]
        n = int.from_bytes(take(w), "big")
        o += w
        return bytes(take(n)), o + n
    if t in (0xCC, 0xCD, 0xCE, 0xCF):
        w = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[t]
        return int.from_bytes(take(w), "big"), o + w
    if t == 0xC0:
        return None, o
    if t in (0xC2, 0xC3):
        return t == 0xC3, o
    raise MpError(f"unsupported msgpack type byte 0x{t:02x}")


# ---- reading replies -----------------------------------------------------------------------

class Reply:
    def __init__(self):
        self.frames = []      # (header tuple, body)
        self.eof = False      # the node closed cleanly
        self.reset = False    # the node reset the connection
        self.timeout = False
        self.rest = b""       # bytes that do not make a whole frame


def parse_frames(data, reply):
    o = 0
    while len(data) - o >= HEADER.size:
        h = HEADER.unpack_from(data, o)
        n = h[5]
        if len(data) - o - HEADER.size < n:
            break
        body = data[o + HEADER.size:o + HEADER.size + n]
        reply.frames.append((h, body))
        o += HEADER.size + n
    reply.rest = data[o:]


def read_to_eof(sock):
    """Reads until the node closes (or the socket timeout hits) and splits the bytes into
    frames."""
    r = Reply()
    chunks = []
    try:
        while True:
            b = sock.recv(1 << 16)
            if not b:
                r.eof = True
                break
            chunks.append(b)
    except ConnectionResetError:
        r.reset = True
    except socket.timeout:
        r.timeout = True
    parse_frames(b"".join(chunks), r)
    return r


def read_frames(sock, count):
    """Reads exactly `count` whole frames (bounded by the socket timeout)."""
    r = Reply()
    data = b""
    try:
        while True:
            parse_frames(data, r)
            if len(r.frames) >= count:
                return r
            r.frames = []
            b = sock.recv(1 << 16)
            if not b:
                r.eof = True
                parse_frames(data, r)
                return r
            data += b
    except ConnectionResetError:
        r.reset = True
    except socket.timeout:
        r.timeout = True
    parse_frames(data, r)
    return r


def check_frame(h, body, what):
    """Header sanity and, when XXH3 is available, the checksum of a frame from the node."""
    magic, version, _flags, kind, _rid, n, csum = h
    if magic != MAGIC or version != VERSION or n != len(body):
        raise TestFailure(f"{what}: node sent a malformed frame header {h}")
    if XXH3 is not None:
        prefix = HEADER.pack(*h[:6], 0)[:20]
        if frame_checksum(prefix, body) != csum:
            raise TestFailure(f"{what}: node sent a frame (kind {kind}) with a wrong checksum")


def decode_error(body, what):
    try:
        v = mp_decode(body)
    except MpError as e:
        raise TestFailure(f"{what}: ERROR body is not msgpack ({e}): {body[:64]!r}") from None
    if not (isinstance(v, list) and len(v) >= 2 and isinstance(v[0], int) and isinstance(v[1], str)):
        raise TestFailure(f"{what}: ERROR body is not [code, message]: {v!r}")
    return v[0], v[1]


def expect_error_then_close(reply, what, codes, rid=None, words=()):
    """Exactly one ERROR frame with a code in `codes` (and request id `rid`, and the message
    mentioning all `words`), then a clean EOF."""
    if reply.timeout:
        raise TestFailure(f"{what}: the node neither replied nor closed within {SOCKET_TIMEOUT_S}s "
                          f"(got {len(reply.frames)} frames)")
    if reply.reset and not reply.frames:
        raise TestFailure(f"{what}: connection reset without an ERROR frame")
    if len(reply.frames) != 1 or reply.rest:
        raise TestFailure(f"{what}: want exactly one ERROR frame, got {len(reply.frames)} frames "
                          f"(kinds {[f[0][3] for f in reply.frames]}) and {len(reply.rest)} stray bytes")
    h, body = reply.frames[0]
    check_frame(h, body, what)
    check(h[3] == K_ERROR, f"{what}: want an ERROR frame (kind 3), got kind {h[3]}")
    code, msg = decode_error(body, what)
    check(code in codes, f"{what}: ERROR code {code} ({msg!r}), want one of {sorted(codes)}")
    if rid is not None:
        check(h[4] == rid, f"{what}: ERROR carries request id {h[4]}, want {rid}")
    for w in words:
        check(w in msg.lower(), f"{what}: ERROR message {msg!r} does not mention {w!r}")
    check(reply.eof or reply.reset, f"{what}: the node did not close the connection after the ERROR")
    check(not reply.reset, f"{what}: the node reset the connection instead of closing it after the ERROR")
    return code, msg


def expect_close_maybe_error(reply, what):
    """The node may answer with one ERROR frame or none, but must close (not hang)."""
    if reply.timeout:
        raise TestFailure(f"{what}: the node neither replied nor closed within {SOCKET_TIMEOUT_S}s")
    check(len(reply.frames) <= 1 and not reply.rest,
          f"{what}: want at most one frame, got {len(reply.frames)} and {len(reply.rest)} stray bytes")
    for h, body in reply.frames:
        check_frame(h, body, what)
        check(h[3] == K_ERROR, f"{what}: want an ERROR frame (kind 3), got kind {h[3]}")
        decode_error(body, what)


# ---- the garbage classes ------------------------------------------------------------------------
# Each takes (rnd, sock, ctx_info) and returns a short outcome tag. They raise TestFailure.

def junk(rnd, lo, hi):
    return rnd.randbytes(rnd.randint(lo, hi))


def send_and_finish(sock, rnd, data, read):
    """Sends data in one call. If read: half-close and return the reply. Otherwise vanish,
    sometimes with a RST (SO_LINGER 0)."""
    if data:
        sock.sendall(data)
    if read:
        sock.shutdown(socket.SHUT_WR)
        return read_to_eof(sock)
    if rnd.random() < 0.5:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return None


def g_random_bytes(rnd, sock, info):
    data = junk(rnd, 0, MAX_JUNK)
    while len(data) >= 4 and data[:4] == struct.pack("<I", MAGIC):
        data = junk(rnd, 0, MAX_JUNK)
    read = rnd.random() < 0.7
    r = send_and_finish(sock, rnd, data, read)
    if not read:
        return "sent"
    if len(data) >= HEADER.size:
        expect_error_then_close(r, "random bytes", {C_PROTOCOL}, rid=0, words=("magic",))
        return "error"
    if not data:
        expect_close_maybe_error(r, "no bytes")
        check(not r.frames, "no bytes: the node replied to an empty connection")
        return "closed"
    # Less than a header, then a half-close: the node says the frame was truncated.
    expect_error_then_close(r, f"short random bytes ({len(data)})", {C_PROTOCOL}, rid=0, words=("mid-frame",))
    return "closed"


def g_magic_junk(rnd, sock, info):
    data = struct.pack("<I", MAGIC) + junk(rnd, 0, MAX_JUNK)
    read = rnd.random() < 0.7
    r = send_and_finish(sock, rnd, data, read)
    if read:
        expect_close_maybe_error(r, "magic + junk")
        return "replied" if r.frames else "closed"
    return "sent"


def g_bad_version(rnd, sock, info):
    version = rnd.choice([0, 2, 255, rnd.randrange(2, 256)])
    body = junk(rnd, 0, 256)
    data = frame(rnd.randrange(1 << 16), rnd.getrandbits(64), body, version=version,
                 checksum=rnd.getrandbits(32))
    r = send_and_finish(sock, rnd, data, True)
    expect_error_then_close(r, f"version {version}", {C_PROTOCOL}, rid=0, words=("version",))
    return "error"


def g_oversized(rnd, sock, info):
    n = rnd.choice([MAX_BODY + 1, 0xFFFFFFFF, rnd.randrange(MAX_BODY + 1, 1 << 32)])
    kind = rnd.choice([K_HELLO, K_PUT, rnd.randrange(1 << 16)])
    data = frame(kind, rnd.getrandbits(64), b"", body_len=n, checksum=rnd.getrandbits(32))
    data += junk(rnd, 0, 4096)
    read = rnd.random() < 0.8
    r = send_and_finish(sock, rnd, data, read)
    if read:
        expect_error_then_close(r, f"body_len {n}", {C_TOO_LARGE}, rid=0, words=("exceeds",))
        return "error"
    return "sent"


def g_bad_checksum(rnd, sock, info):
    kind = rnd.choice([K_HELLO, K_PUT, K_GET, rnd.randrange(1 << 16)])
    body = rnd.choice([hello_body(), junk(rnd, 0, 4096)])
    data = wrong_checksum(kind, rnd.getrandbits(64), body, rnd)
    read = rnd.random() < 0.8
    r = send_and_finish(sock, rnd, data, read)
    if read:
        expect_error_then_close(r, "wrong checksum", {C_CORRUPTION}, rid=0, words=("checksum",))
        return "error"
    return "sent"


def g_truncated(rnd, sock, info):
    n = rnd.choice([rnd.randint(1, 4096), rnd.randint(1, 1 << 20), MAX_BODY])
    body = rnd.randbytes(min(n, 8192))
    full = frame(rnd.choice([K_HELLO, K_PUT]), rnd.getrandbits(64), b"", body_len=n,
                 checksum=rnd.getrandbits(32)) + body
    cut = rnd.randint(1, min(len(full), HEADER.size + n) - 1)  # inside the header or the body
    read = rnd.random() < 0.5
    r = send_and_finish(sock, rnd, full[:cut], read)
    if read:
        expect_close_maybe_error(r, f"frame truncated at byte {cut} of {HEADER.size + n}")
        return "closed"
    return "sent"


def bad_msgpack(rnd):
    """A body that is not a valid message: not msgpack, truncated msgpack, msgpack with
    trailing bytes, or msgpack of the wrong shape (wrong types, too few fields, an id of the
    wrong length, strings longer than allowed, deep nesting)."""
    choice = rnd.randrange(9)
    if choice == 0:
        return b""
    if choice == 1:
        b = junk(rnd, 1, 2048)
        return b if b[0] not in range(0x90, 0xA0) else b"\xc1" + b  # 0xc1 is never valid
    if choice == 2:
        return b"\xc1" + junk(rnd, 0, 64)
    if choice == 3:  # a declared length far past the end
        return rnd.choice([b"\xdd\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xf0", b"\xdb\x7f\xff\xff\xff",
                           b"\xdf\x00\x00\x00\x10"]) + junk(rnd, 0, 32)
    if choice == 4:  # valid msgpack, then trailing bytes
        return hello_body() + b"\x00" + junk(rnd, 0, 16)
    if choice == 5:  # a bare scalar or a map
        return rnd.choice([mp_uint(rnd.getrandbits(32)), mp_str("hello"), b"\x80", b"\xc0"])
    if choice == 6:  # too few fields / wrong types
        return mp_array([mp_uint(1)] * rnd.randrange(0, 3))
    if choice == 7:  # an id of the wrong length, or a string where bin belongs
        return mp_array([rnd.choice([mp_bin(rnd.randbytes(rnd.choice([0, 31, 33]))), mp_str("x" * 32)]),
                         mp_bin(b"v"), mp_uint(0), mp_uint(0)])
    # deep nesting past the decoder's depth limit
    d = rnd.randrange(5, 200)
    return b"\x91" * d + b"\x01"


def g_hello_not_msgpack(rnd, sock, info):
    rid = rnd.getrandbits(64)
    body = bad_msgpack(rnd)
    if rnd.random() < 0.2:
        body = mp_array([mp_str("x" * 2000), mp_uint(1), mp_array([]), mp_str("")])  # id too long
    r = send_and_finish(sock, rnd, frame(K_HELLO, rid, body), rnd.random() < 0.8)
    if r is None:
        return "sent"
    expect_error_then_close(r, f"HELLO with body {body[:24]!r}", {C_REFUSED}, rid=rid, words=("hello",))
    return "error"


def g_not_hello_first(rnd, sock, info):
    rid = rnd.getrandbits(64)
    kind = rnd.choice([K_PUT, K_GET, K_DEL, K_STAT, K_TXN, K_ERROR, K_ACK, K_HELLO_REPLY,
                       rnd.randrange(2, 1 << 16)])
    body = rnd.choice([bad_msgpack(rnd), mp_array([mp_bin(os.urandom(32))])])
    r = send_and_finish(sock, rnd, frame(kind, rid, body), True)
    expect_error_then_close(r, f"kind {kind} before HELLO", {C_REFUSED}, rid=rid, words=("hello",))
    return "error"


def g_hello_refused(rnd, sock, info):
    rid = rnd.getrandbits(64)
    if rnd.random() < 0.5:
        body, word = hello_body(cluster_id=rnd.choice(["", "other", "ringstore2", "RINGSTORE"])), "cluster"
    else:
        body, word = hello_body(version=rnd.choice([0, 2, 7, 1 << 31])), "version"
    r = send_and_finish(sock, rnd, frame(K_HELLO, rid, body), True)
    expect_error_then_close(r, f"HELLO refused for its {word}", {C_REFUSED}, rid=rid, words=(word,))
    return "error"


def g_after_handshake(rnd, sock, info):
    """A good HELLO, then malformed requests (each must get its own ERROR and leave the
    connection open), then a real GET of the probe key on the same connection."""
    rid = rnd.getrandbits(63)
    sock.sendall(frame(K_HELLO, rid, hello_body()))
    r = read_frames(sock, 1)
    check(len(r.frames) == 1, f"handshake: no HELLO_REPLY (eof={r.eof} reset={r.reset} timeout={r.timeout})")
    h, body = r.frames[0]
    check_frame(h, body, "HELLO_REPLY")
    check(h[3] == K_HELLO_REPLY and h[4] == rid, f"handshake: want HELLO_REPLY to {rid}, got kind {h[3]} id {h[4]}")
    v = mp_decode(body)
    check(isinstance(v, list) and v[0] == CLUSTER_ID, f"HELLO_REPLY body {v!r}")

    bad = []
    for i in range(rnd.randint(1, 12)):
        kind = rnd.choice([K_PUT, K_GET, K_DEL, K_STAT, K_TXN, K_HELLO, K_ERROR, K_ACK, K_GET_REPLY,
                           rnd.randrange(1 << 16)])
        body = bad_msgpack(rnd)
        if kind == K_TXN and rnd.random() < 0.5:  # an empty op list, or ops of the wrong shape
            body = mp_array([mp_uint(1), mp_uint(0), mp_array(rnd.choice([[], [mp_uint(3)]]))])
        bad.append((rid + 1 + i, kind, body))
    probe_rid = rid + 100
    probe = frame(K_GET, probe_rid, mp_array([mp_bin(info["probe_id"])]))
    sock.sendall(b"".join(frame(k, q, b) for q, k, b in bad) + probe)  # pipelined
    r = read_frames(sock, len(bad) + 1)
    check(not r.timeout and len(r.frames) == len(bad) + 1,
          f"after handshake: want {len(bad) + 1} replies, got {len(r.frames)} "
          f"(eof={r.eof} reset={r.reset} timeout={r.timeout}); sent kinds {[k for _, k, _ in bad]}")
    by_rid = {}
    for h, body in r.frames:
        check_frame(h, body, "reply after handshake")
        by_rid[h[4]] = (h, body)
    for q, k, b in bad:
        check(q in by_rid, f"after handshake: no reply to request {q} (kind {k}, body {b[:24]!r})")
        h, body = by_rid[q]
        check(h[3] == K_ERROR, f"after handshake: malformed kind {k} body {b[:24]!r} got kind {h[3]}, "
                               f"want ERROR")
        code, msg = decode_error(body, f"kind {k}")
        check(code in (C_PROTOCOL, C_TOO_LARGE, 3), f"kind {k} body {b[:24]!r}: ERROR code {code} {msg!r}")
    check(probe_rid in by_rid, "after handshake: no reply to the GET of the probe key")
    h, body = by_rid[probe_rid]
    check(h[3] == K_GET_REPLY, f"GET of the probe key after garbage: kind {h[3]} "
                               f"{decode_error(body, 'probe') if h[3] == K_ERROR else ''}")
    v = mp_decode(body)
    check(isinstance(v, list) and len(v) >= 5 and v[4] == info["probe_value"],
          "GET of the probe key after garbage returned the wrong value")
    return "served"


def g_dribble(rnd, sock, info):
    """A wrong-checksum frame sent in many small writes (Nagle off), so the node assembles the
    header and body from pieces before it can judge the checksum."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = wrong_checksum(rnd.choice([K_HELLO, K_PUT]), rnd.getrandbits(64), junk(rnd, 0, 600), rnd)
    o = 0
    while o < len(data):
        n = rnd.randint(1, 40)
        sock.sendall(data[o:o + n])
        o += n
    sock.shutdown(socket.SHUT_WR)
    expect_error_then_close(read_to_eof(sock), "dribbled wrong-checksum frame", {C_CORRUPTION}, rid=0,
                            words=("checksum",))
    return "error"


def g_empty(rnd, sock, info):
    r = send_and_finish(sock, rnd, b"", rnd.random() < 0.5)
    if r is not None:
        expect_close_maybe_error(r, "empty connection")
        check(not r.frames, "empty connection: node replied to nothing")
    return "closed"


NEEDS_XXH3 = {"hello_not_msgpack", "not_hello_first", "hello_refused", "after_handshake"}
CLASSES = [  # (name, weight, fn)
    ("random_bytes", 16, g_random_bytes),
    ("magic_junk", 12, g_magic_junk),
    ("bad_version", 5, g_bad_version),
    ("oversized", 10, g_oversized),
    ("bad_checksum", 12, g_bad_checksum),
    ("truncated", 12, g_truncated),
    ("hello_not_msgpack", 12, g_hello_not_msgpack),
    ("not_hello_first", 6, g_not_hello_first),
    ("hello_refused", 4, g_hello_refused),
    ("after_handshake", 8, g_after_handshake),
    ("dribble", 4, g_dribble),
    ("empty", 3, g_empty),
]
HELD = 64                  # connections held open mid-frame at once
HELD_MAX_BODY_CLAIMS = 8   # of which this many claim the largest allowed body


def one_connection(addr, seed, index, info):
    rnd = random.Random(seed * 1000003 + index)
    classes = [c for c in CLASSES if XXH3 is not None or c[0] not in NEEDS_XXH3]
    if XXH3 is None and rnd.random() < 0.3:
        name, fn = "bad_checksum", g_bad_checksum  # stands in for the classes we cannot frame
    else:
        name, _, fn = rnd.choices(classes, weights=[c[1] for c in classes])[0]
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as sock:
            sock.settimeout(SOCKET_TIMEOUT_S)
            outcome = fn(rnd, sock, info)
        return name, outcome, None
    except TestFailure as e:
        return name, "FAILED", f"connection #{index} ({name}, seed {seed}): {e}"
    except OSError as e:
        return name, "FAILED", f"connection #{index} ({name}, seed {seed}): socket error {e!r}"
    except Exception as e:  # e.g. MpError from a malformed reply
        return name, "FAILED", f"connection #{index} ({name}, seed {seed}): {e!r}"


def held_connections(ctx, node, seed, probe_value):
    """HELD connections each stop in the middle of a frame (in the header, in a body, or after
    a good HELLO) and stay open. The node must keep serving other clients meanwhile, and
    must let go of them all once they close."""
    rnd = random.Random(seed ^ 0x5A5A)
    host, port = node.addr.rsplit(":", 1)
    socks = []
    try:
        for i in range(HELD):
            s = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S)
            s.settimeout(SOCKET_TIMEOUT_S)
            socks.append(s)
            if i < HELD_MAX_BODY_CLAIMS:
                n = MAX_BODY
            else:
                n = rnd.randint(1, 1 << 20)
            kind = rnd.choice([K_HELLO, K_PUT])
            if XXH3 is not None and i % 3 == 0:  # handshake first, then stall inside a PUT
                s.sendall(frame(K_HELLO, 1, hello_body()))
                r = read_frames(s, 1)
                check(len(r.frames) == 1 and r.frames[0][0][3] == K_HELLO_REPLY,
                      "held connection: handshake failed")
                kind = K_PUT
            hdr = frame(kind, 2, b"", body_len=n, checksum=rnd.getrandbits(32))
            part = rnd.choice([hdr[:rnd.randint(1, HEADER.size - 1)], hdr + rnd.randbytes(min(n - 1, 2048))])
            s.sendall(part)
        g = expect_rc(ctx.cli("get", PROBE_KEY, cluster=node, cli_timeout=10), EXIT_OK,
                      f"CLI get while {HELD} connections hold partial frames")
        check(g.stdout == probe_value, "probe key read back wrong while connections were held")
        check(node.alive(), "node died while connections held partial frames")
        log(f"{HELD} connections held mid-frame ({HELD_MAX_BODY_CLAIMS} claiming {MAX_BODY} bytes); "
            f"node still serving")
    finally:
        for s in socks:
            s.close()


def test(ctx, args):
    if XXH3 is None:
        log(f"NOTE: no XXH3 available ({XXH3_SOURCE}); the classes {sorted(NEEDS_XXH3)} need a correct "
            f"frame checksum and are replaced by wrong-checksum frames")
    else:
        log(f"XXH3 from {XXH3_SOURCE}")
    node = ctx.node("node")
    node.start()
    probe_value = os.urandom(1000)
    expect_rc(ctx.cli("put", PROBE_KEY, cluster=node, input=probe_value), EXIT_OK, "put of the probe key")
    info = {"probe_id": hashlib.sha256(b"default\0" + PROBE_KEY.encode()).digest(), "probe_value": probe_value}
    fd_baseline = node.fd_count()

    counts = collections.Counter()
    failures = []
    per_batch = CONNECTIONS // BATCHES
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        for b in range(BATCHES):
            lo, hi = b * per_batch, (b + 1) * per_batch if b < BATCHES - 1 else CONNECTIONS
            for name, outcome, err in pool.map(lambda i: one_connection(node.addr, args.seed, i, info),
                                               range(lo, hi)):
                counts[(name, outcome)] += 1
                if err:
                    failures.append(err)
            check(node.alive(), f"node died during garbage batch {b + 1} (exit {node.proc.returncode}); "
                                f"log tail:\n{harness.tail(node.log())}")
            g = expect_rc(ctx.cli("get", PROBE_KEY, cluster=node, cli_timeout=10), EXIT_OK,
                          f"CLI get after garbage batch {b + 1}")
            check(g.stdout == probe_value, f"probe key read back wrong after batch {b + 1}")
            log(f"batch {b + 1}/{BATCHES}: {hi} connections done, {len(failures)} failed checks; node serving")
    if failures:
        shown = "\n  ".join(failures[:15])
        raise TestFailure(f"{len(failures)} of {CONNECTIONS} garbage connections failed their checks:\n  {shown}")

    by_class = collections.defaultdict(dict)
    for (name, outcome), n in sorted(counts.items()):
        by_class[name][outcome] = n
    for name, outcomes in by_class.items():
        log(f"  {name:18s} {outcomes}")

    held_connections(ctx, node, args.seed, probe_value)

    # No leaked connections: the node's fd count comes back to where it started.
    wait_until(lambda: (node.fd_count() or 1 << 30) <= fd_baseline + 2, 10,
               f"the node's open fds to return to {fd_baseline} (now {node.fd_count()})")
    check(node.alive(), "node is not alive after the garbage")
    value = os.urandom(123457)
    expect_rc(ctx.cli("put", "after-garbage", cluster=node, input=value), EXIT_OK, "CLI put after garbage")
    g = expect_rc(ctx.cli("get", "after-garbage", cluster=node), EXIT_OK, "CLI get after garbage")
    check(g.stdout == value, "CLI get after garbage returned different bytes")
    warns = node.log().count("closing connection")
    rc = node.stop()
    check(rc == 0, f"node exited {rc} after SIGTERM, want 0")
    replied = sum(n for (name, outcome), n in counts.items() if outcome in ("error", "replied", "served"))
    return (f"{CONNECTIONS} garbage connections ({len(by_class)} classes, {replied} replies checked, "
            f"{warns} stream errors logged); node alive, no fd leak, CLI put/get ok")


if __name__ == "__main__":
    harness.run(test, "test_garbage", __doc__)
