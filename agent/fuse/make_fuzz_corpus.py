#!/usr/bin/env python3
"""Writes the seed corpus for server_fuzzer into fuzz_corpus/.

One seed per scenario (mostly one per opcode), in the record format of
fuzz_harness.h: u8 control | u16 LE length | request bytes. Inode ids and
handles match the tree FuzzOne builds: root 1, hello 2, sub 3, sub/a 4,
link 5; handles from 100. Struct layouts are those of <linux/fuse.h> 7.38.

Usage: agent/fuse/make_fuzz_corpus.py   (rewrites agent/fuse/fuzz_corpus/)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fuzz_corpus")

OP = dict(LOOKUP=1, FORGET=2, GETATTR=3, SETATTR=4, READLINK=5, SYMLINK=6, MKNOD=8,
          MKDIR=9, UNLINK=10, RMDIR=11, RENAME=12, LINK=13, OPEN=14, READ=15, WRITE=16,
          STATFS=17, RELEASE=18, FSYNC=20, SETXATTR=21, GETXATTR=22, LISTXATTR=23,
          REMOVEXATTR=24, FLUSH=25, INIT=26, OPENDIR=27, READDIR=28, RELEASEDIR=29,
          FSYNCDIR=30, GETLK=31, SETLK=32, SETLKW=33, ACCESS=34, CREATE=35, INTERRUPT=36,
          BMAP=37, DESTROY=38, IOCTL=39, POLL=40, BATCH_FORGET=42, FALLOCATE=43,
          READDIRPLUS=44, RENAME2=45, LSEEK=46, COPY_FILE_RANGE=47, SYNCFS=50)

REPLY_4096 = 6 << 2   # control bits 2-4: reply buffer 4096 bytes
unique = [10]


def req(op, nodeid, body=b"", len_delta=0, extlen=0):
    unique[0] += 1
    length = 40 + len(body) + len_delta
    hdr = struct.pack("<IIQQIIIHH", length & 0xffffffff, OP.get(op, op) if isinstance(op, str) else op,
                      unique[0], nodeid, 1000, 1000, 42, extlen, 0)
    return hdr + body


def rec(request, control=REPLY_4096):
    return struct.pack("<BH", control, len(request)) + request


def name(s):
    return s.encode() + b"\0"


def read_in(fh, offset, size):
    return struct.pack("<QQIIQII", fh, offset, size, 0, 0, 0, 0)


def open_in(flags=2):
    return struct.pack("<II", flags, 0)


def init_in(major, minor, flags=0xffffffff, flags2=0, full=True):
    b = struct.pack("<IIII", major, minor, 131072, flags)
    if full:
        b += struct.pack("<I", flags2) + b"\0" * 44
    return b


def lk_in(fh, owner, start, end, typ):
    return struct.pack("<QQQQIIII", fh, owner, start, end, typ, 77, 0, 0)


seeds = {}
O = lambda fh=100: req("OPEN", 2, open_in())
seeds["lookup"] = [req("LOOKUP", 1, name("hello")), req("LOOKUP", 3, name("a"))]
seeds["lookup_long"] = [req("LOOKUP", 1, b"x" * 300 + b"\0")]
seeds["lookup_nonul"] = [req("LOOKUP", 1, b"hello")]
seeds["forget"] = [req("LOOKUP", 1, name("hello")), req("FORGET", 2, struct.pack("<Q", 1))]
seeds["batch_forget"] = [req("LOOKUP", 1, name("hello")),
                         req("BATCH_FORGET", 0, struct.pack("<II", 2, 0) +
                             struct.pack("<QQ", 2, 1) + struct.pack("<QQ", 3, 1))]
seeds["getattr"] = [req("GETATTR", 2, struct.pack("<IIQ", 0, 0, 0))]
seeds["getattr_fh"] = [O(), req("GETATTR", 2, struct.pack("<IIQ", 1, 0, 100))]
seeds["setattr"] = [req("SETATTR", 2, struct.pack("<IIQQQQQQIIIIIIII", (1 << 3) | 1, 0, 0, 3,
                                                   0, 0, 0, 0, 0, 0, 0, 0o100600, 0, 0, 0, 0))]
seeds["readlink"] = [req("READLINK", 5)]
seeds["symlink"] = [req("SYMLINK", 1, name("ln") + name("sub/a"))]
seeds["mknod"] = [req("MKNOD", 1, struct.pack("<IIII", 0o100644, 0, 0o22, 0) + name("node"))]
seeds["mkdir"] = [req("MKDIR", 1, struct.pack("<II", 0o755, 0o22) + name("d"))]
seeds["unlink"] = [req("UNLINK", 1, name("hello"))]
seeds["rmdir"] = [req("MKDIR", 1, struct.pack("<II", 0o755, 0) + name("e")),
                  req("RMDIR", 1, name("e")), req("RMDIR", 1, name("sub"))]
seeds["rename"] = [req("RENAME", 1, struct.pack("<Q", 3) + name("hello") + name("moved"))]
seeds["rename2"] = [req("RENAME2", 1, struct.pack("<QII", 1, 2, 0) + name("hello") +
                        name("link"))]
seeds["link"] = [req("LINK", 3, struct.pack("<Q", 2) + name("hard"))]
seeds["open_read"] = [O(), req("READ", 2, read_in(100, 0, 100))]
seeds["read_big"] = [O(), req("READ", 2, read_in(100, 0, 1 << 20))]
seeds["write"] = [O(), req("WRITE", 2, struct.pack("<QQIIQII", 100, 3, 5, 0, 0, 0, 0) +
                           b"HELLO")]
seeds["write_short"] = [O(), req("WRITE", 2, struct.pack("<QQIIQII", 100, 3, 50, 0, 0, 0, 0) +
                                 b"HELLO")]
seeds["statfs"] = [req("STATFS", 1)]
seeds["release"] = [O(), req("RELEASE", 2, struct.pack("<QIIQ", 100, 2, 1, 9))]
seeds["fsync"] = [O(), req("FSYNC", 2, struct.pack("<QII", 100, 1, 0))]
seeds["flush"] = [O(), req("FLUSH", 2, struct.pack("<QIIQ", 100, 0, 0, 9))]
seeds["setxattr"] = [req("SETXATTR", 2, struct.pack("<IIII", 3, 0, 0, 0) + name("user.n") +
                         b"abc")]
seeds["getxattr"] = [req("GETXATTR", 2, struct.pack("<II", 0, 0) + name("user.color")),
                     req("GETXATTR", 2, struct.pack("<II", 2, 0) + name("user.color")),
                     req("GETXATTR", 2, struct.pack("<II", 64, 0) + name("user.color"))]
seeds["listxattr"] = [req("LISTXATTR", 2, struct.pack("<II", 0, 0)),
                      req("LISTXATTR", 2, struct.pack("<II", 64, 0))]
seeds["removexattr"] = [req("REMOVEXATTR", 2, name("user.color"))]
seeds["init_again"] = [req("INIT", 0, init_in(7, 38))]
seeds["destroy_init"] = [req("DESTROY", 0), req("INIT", 0, init_in(7, 31, full=False))]
seeds["opendir_readdir"] = [req("OPENDIR", 1, open_in(0)), req("READDIR", 1, read_in(100, 0, 4096)),
                            req("READDIR", 1, read_in(100, 2, 80))]
seeds["readdirplus"] = [req("OPENDIR", 1, open_in(0)),
                        req("READDIRPLUS", 1, read_in(100, 0, 4096)),
                        req("RELEASEDIR", 1, struct.pack("<QIIQ", 100, 0, 0, 0))]
seeds["fsyncdir"] = [req("OPENDIR", 3, open_in(0)), req("FSYNCDIR", 3, struct.pack("<QII", 100, 0, 0))]
seeds["locks"] = [O(), req("SETLK", 2, lk_in(100, 1, 0, 99, 1)),
                  req("GETLK", 2, lk_in(100, 2, 0, 10, 0)),
                  req("SETLKW", 2, lk_in(100, 2, 0, 10, 1))]
seeds["access"] = [req("ACCESS", 2, struct.pack("<II", 6, 0))]
seeds["create"] = [req("CREATE", 1, struct.pack("<IIII", 0o102, 0o644, 0o22, 0) + name("new"))]
seeds["interrupt"] = [req("INTERRUPT", 0, struct.pack("<Q", 5))]
seeds["enosys"] = [req("BMAP", 2, b"\0" * 16), req("IOCTL", 2, b"\0" * 32),
                   req("POLL", 2, b"\0" * 24), req("SYNCFS", 1, b"\0" * 8), req(9999, 1)]
seeds["fallocate"] = [O(), req("FALLOCATE", 2, struct.pack("<QQQII", 100, 0, 64, 0, 0))]
seeds["lseek"] = [O(), req("LSEEK", 2, struct.pack("<QQII", 100, 2, 3, 0)),
                  req("LSEEK", 2, struct.pack("<QQII", 100, 2, 4, 0))]
seeds["copy_file_range"] = [O(), req("OPEN", 4, open_in()),
                            req("COPY_FILE_RANGE", 2, struct.pack("<QQQQQQQ", 100, 0, 4, 101, 0,
                                                                  5, 0))]
seeds["len_mismatch"] = [req("GETATTR", 1, struct.pack("<IIQ", 0, 0, 0), len_delta=8),
                         req("GETATTR", 1, struct.pack("<IIQ", 0, 0, 0), len_delta=-30)]
seeds["extensions"] = [req("GETATTR", 1, struct.pack("<IIQ", 0, 0, 0) + b"E" * 8, extlen=1)]
seeds["short_struct"] = [req("READ", 2, b"\0" * 10), req("SETATTR", 2, b"\0" * 20)]

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if f.startswith("seed_"):
        os.remove(os.path.join(OUT, f))
for label, requests in sorted(seeds.items()):
    with open(os.path.join(OUT, "seed_" + label), "wb") as f:
        f.write(b"".join(rec(r) for r in requests))
# Seeds that fuzz INIT itself (first control byte has bit 7 set).
for label, body in {"init_major8": init_in(8, 0), "init_major6": init_in(6, 40),
                    "init_old_minor": init_in(7, 20, full=False),
                    "init_new_minor": init_in(7, 44, flags2=0xffffffff)}.items():
    with open(os.path.join(OUT, "seed_" + label), "wb") as f:
        f.write(rec(req("INIT", 0, body), 0x80 | REPLY_4096) +
                rec(req("GETATTR", 1, struct.pack("<IIQ", 0, 0, 0))))
# Scatter-gather and reply-size variations of one lookup.
for control in (0, 1, 2, 3, 1 << 2, 2 << 2, 3 << 2, 4 << 2, 7 << 2):
    with open(os.path.join(OUT, "seed_lookup_ctl%02x" % control), "wb") as f:
        f.write(rec(req("LOOKUP", 1, name("hello")), control))
print(len(os.listdir(OUT)), "files in", OUT)
