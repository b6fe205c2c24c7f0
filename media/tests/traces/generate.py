#!/usr/bin/env python3
"""Writes the jitter-buffer traces described in README.md (fixed seeds)."""
import random

def write(name, about, rows):
    with open(name, "w") as f:
        f.write(f"# {about}\n# arrival_ms seq timestamp ssrc\n")
        for arrival, seq, ts, ssrc in sorted(rows, key=lambda r: r[0]):
            f.write(f"{arrival:.3f} {seq % 65536} {ts % 2**32} {ssrc}\n")

def stream(n, seed, seq0=65000, ts0=4_000_000_000, ssrc=0x1234, jitter=5.0, period=20.0):
    rng = random.Random(seed)
    return [(40.0 + i * period + rng.uniform(0, jitter), seq0 + i, ts0 + 160 * i, ssrc) for i in range(n)]

rows = stream(3000, 1)
rng = random.Random(2)
write("loss5.trace", "60 s, 5% random loss, 5 ms jitter", [r for r in rows if rng.random() >= 0.05])

rows = stream(3000, 3, jitter=2.0)
rng = random.Random(4)
out = []
i = 0
while i < len(rows):
    if i + 1 < len(rows) and rng.random() < 0.2:
        a, b = rows[i], rows[i + 1]
        out += [(b[0], *a[1:]) , (b[0] + 0.5, *b[1:])]  # i arrives just after i+1
        i += 2
    else:
        out.append(rows[i])
        i += 1
write("reorder20.trace", "60 s, 20% of packets swapped with the next", out)

rows = stream(3000, 5)
write("spike200.trace", "60 s, a 200 ms stall at 20 s, then the backlog at once",
      [(max(r[0], 20200.0 + 0.01 * k) if 20000.0 <= r[0] < 20200.0 else r[0], *r[1:]) for k, r in enumerate(rows)])

for ppm, name in ((100, "drift+100.trace"), (-100, "drift-100.trace")):
    write(name, f"10 min, sender clock {ppm:+d} ppm", stream(30000, 6, jitter=3.0, period=20.0 / (1 + ppm * 1e-6)))

a = stream(1500, 7)
b = [(r[0] + 30000.0, r[1], r[2], r[3]) for r in stream(1500, 8, seq0=123, ts0=777_000, ssrc=0xBEEF)]
write("ssrc-change.trace", "60 s, new SSRC, sequence and timestamp at 30 s", a + b)
