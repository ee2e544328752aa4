#!/usr/bin/env python3
"""Writes the seed corpus of the coordinator fuzz targets.

Each seed is one scenario in the input encoding of
server/coordinator_fuzz_harness.h: a config byte, then op bytes with their
operands. The seeds reach every request, both stores' restart path,
subscriber overflow, log compaction (ResyncRequired), strict-mode waits and
the validation errors; libFuzzer mutates from there.

  server/make_coordinator_fuzz_corpus.py [DIR]   (default server/fuzz_corpus)
"""
import os
import sys

WAIT = 0x10  # without it, CreateVolume/Resolve/Bump are not awaited

# Operand bytes (see the decoders in coordinator_fuzz_harness.cc).
V0, V1, V2 = 0, 1, 2
V_EMPTY, V_TOO_LONG, V_LONGEST, V_SLASH, V_RAW, V_NUL, V_UPPER, V3 = range(192, 200)
A0, A1, A2 = 0, 1, 2
A_EMPTY, A_TOO_LONG, A_LONGEST, A_RAW = 192, 193, 194, 195
K_RAW, K_LONGEST, K_TOO_LONG, K_EMPTY = 224, 225, 226, 227
N_ZERO, N_MAX, N_TOO_MANY = 250, 253, 254
TTL_DEFAULT, TTL_1MS, TTL_100MS, TTL_1S, TTL_10S = 0, 1, 2, 3, 4
CAP_DEFAULT, CAP_1, CAP_2, CAP_3, CAP_16, CAP_MAX, CAP_TOO_BIG = range(7)
FROM_NOW, FROM_1, FROM_COMMITTED, FROM_NEXT, FROM_FUTURE = range(5)
SEQ_0, SEQ_COMMITTED, SEQ_LAST, SEQ_NEXT = range(4)


def count(n):
    return n - 1 if 1 <= n <= 8 else n


def register(agent, ttl=TTL_10S, guest=1):
    return [0x00, agent, ttl, guest]


def keepalive(agent):
    return [0x01, agent]


def unregister(agent):
    return [0x02, agent]


def create(volume, cap=CAP_DEFAULT, async_=False):
    return [0x03 | (0 if async_ else WAIT), volume, cap]


def resolve(volume, keys, async_=False, n=None):
    out = [0x04 | (0 if async_ else WAIT), volume, count(len(keys)) if n is None else n]
    for k in keys:
        out += k if isinstance(k, list) else [k]
    return out


def bump(volume, slots, strict=False, agent=None, async_=False, n=None):
    flags = (1 if strict else 0) | (2 if agent is not None and not strict else 0)
    out = [0x06 | (0 if async_ else WAIT) | flags << 5, volume]
    if strict or agent is not None:
        out.append(A0 if agent is None else agent)
    out.append(count(len(slots)) if n is None else n)
    return out + list(slots)


def subscribe(volume, frm=FROM_NOW, agent=None):
    out = [0x08 | ((1 << 5) if agent is not None else 0), volume]
    if agent is not None:
        out.append(agent)
    return out + [frm]


def drain(index=0, events=4):
    # One byte b: 1 + b % 4 events from subscription b % len(subscriptions)
    # (the index is exact while at most four subscriptions are open).
    return [0x09, (events - 1) + 4 * index]


def cancel(index=0):
    return [0x0A, index]


def ack(agent, volume, seq=SEQ_COMMITTED, leases=()):
    out = [0x0B, agent, volume, seq, len(leases)]
    for slot, ms in leases:
        out += [slot, ms]
    return out


def snapshot(volume, start=0, max_slots=0):
    return [0x0C, volume, start, max_slots]


def describe(volume):
    return [0x0D, volume]


SYNC = [0x0E]
RESTART = [0x0F]

SEEDS = {
    "basic": [0x00] + create(V0) + resolve(V0, [0, 1, 2]) + bump(V0, [0, 1])
    + snapshot(V0) + describe(V0) + SYNC,
    "stream": [0x00] + create(V0) + register(A0) + subscribe(V0, FROM_NOW, A0)
    + resolve(V0, [0, 1, 2]) + bump(V0, [0, 1, 2]) + bump(V0, [1]) + drain(0, 4)
    + ack(A0, V0, SEQ_COMMITTED, [(1, 2)]) + SYNC,
    "strict": [0x00] + register(A0) + register(A1) + create(V0)
    + resolve(V0, [0, 1]) + subscribe(V0, FROM_NOW, A1)
    + bump(V0, [0, 1], strict=True, agent=A0) + drain(0, 4)
    + ack(A1, V0, SEQ_COMMITTED, [(0, 1), (1, 2)]) + SYNC
    + bump(V0, [1], strict=True, agent=A1) + SYNC,
    "restart": [0x00] + create(V0) + create(V1, CAP_16) + resolve(V0, [0, 1, 2])
    + bump(V0, [0, 1, 1]) + register(A0) + subscribe(V0, FROM_1, A0) + RESTART
    + resolve(V0, [2, 1, 0, 3]) + bump(V0, [3, 0]) + snapshot(V0) + RESTART
    + describe(V0) + SYNC,
    "overflow": [0x01 | 0x04] + create(V0) + resolve(V0, list(range(8)))
    + subscribe(V0) + bump(V0, list(range(8))) + bump(V0, list(range(8)))
    + drain(0, 2) + bump(V0, list(range(8))) + SYNC,
    "resync": [0x08] + create(V0) + resolve(V0, [0, 1]) + bump(V0, [0, 1, 0, 1])
    + bump(V0, [1, 1, 1]) + subscribe(V0, FROM_1) + subscribe(V0, FROM_COMMITTED)
    + drain(0, 4) + SYNC,
    "invalid": [0x00] + create(V_EMPTY) + create(V_TOO_LONG) + create(V_SLASH)
    + create(V_NUL) + create(V_LONGEST) + create(V0, CAP_TOO_BIG)
    + resolve(V0, [K_EMPTY]) + resolve(V_LONGEST, [K_TOO_LONG])
    + resolve(V_LONGEST, [[K_LONGEST, 7]]) + resolve(V0, [], n=N_ZERO)
    + bump(V_LONGEST, [], n=N_ZERO) + bump(V_LONGEST, [0])
    + register(A_EMPTY) + register(A_TOO_LONG) + register(A_LONGEST)
    + bump(V_LONGEST, [0], strict=True, agent=A_EMPTY)
    + subscribe(V_SLASH) + subscribe(V_LONGEST, FROM_FUTURE)
    + [0x0B, A_LONGEST, V_LONGEST, SEQ_NEXT, 7] + snapshot(V_UPPER, 3, 1)
    + describe(V_EMPTY) + SYNC,
    "capacity": [0x00] + create(V1, CAP_2) + resolve(V1, [0, 1, 2])
    + resolve(V1, [0, 1]) + resolve(V1, [1, 0, 1]) + resolve(V1, [3])
    + bump(V1, [1, 2]) + snapshot(V1, 2, 1) + SYNC,
    "group_commit": [0x00] + create(V0, async_=True) + resolve(V0, [0, 1], async_=True)
    + create(V0, async_=True) + bump(V0, [0], async_=True)
    + resolve(V0, [2, 3], async_=True) + bump(V0, [1, 0], async_=True)
    + create(V2, CAP_1, async_=True) + resolve(V2, [0, 1], async_=True) + SYNC
    + snapshot(V0) + SYNC,
    "agents": [0x00] + register(A0) + register(A0) + keepalive(A0)
    + unregister(A0) + keepalive(A0) + unregister(A0) + register(A1, TTL_100MS, 3)
    + register(A2, TTL_DEFAULT, 0) + keepalive(A1) + create(V0)
    + ack(A1, V0, SEQ_0) + ack(A0, V0) + unregister(A2) + SYNC,
    "subscriptions": [0x00] + create(V0) + resolve(V0, [0]) + bump(V0, [0])
    + subscribe(V0, FROM_FUTURE) + subscribe(V0, FROM_NEXT)
    + subscribe(V0, FROM_1) + register(A0) + subscribe(V0, FROM_NOW, A0)
    + bump(V0, [0, 0]) + drain(1, 3) + cancel(0) + unregister(A0) + drain(2, 4)
    + SYNC,
    "big_batch": [0x00] + create(V0) + resolve(V0, [], n=N_MAX)
    + bump(V0, [], n=N_MAX) + resolve(V0, [], n=N_TOO_MANY) + SYNC,
    "ack_leases": [0x00] + register(A0) + register(A1) + create(V0)
    + resolve(V0, [0, 1, 2]) + subscribe(V0, FROM_NOW, A0)
    + subscribe(V0, FROM_NOW, A1) + bump(V0, [0, 1, 2], strict=True, agent=A2)
    + ack(A0, V0, SEQ_LAST, [(0, 1), (2, 2)]) + ack(A1, V0, SEQ_NEXT)
    + ack(A1, V0, SEQ_LAST, [(5, 0)]) + ack(A1, V0, SEQ_LAST, [(1, 1)])
    + drain(0, 4) + drain(1, 4) + SYNC,
}


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fuzz_corpus")
    os.makedirs(out_dir, exist_ok=True)
    for name, ops in SEEDS.items():
        with open(os.path.join(out_dir, "seed_" + name), "wb") as f:
            f.write(bytes(ops))
    print(f"wrote {len(SEEDS)} seeds to {out_dir}")


if __name__ == "__main__":
    main()
