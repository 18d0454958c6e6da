import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  clampGrowth,
  clampShrink,
  freeBufferPages,
  INT_MAX,
  kernelDefaultTcpBufferMax,
  kernelDefaultTcpMem,
  parseZoneinfo,
  readFreeBufferPages,
  socketBufferCeiling,
  tcpMemCeilings,
  withinDomain,
  ZoneinfoError,
} from "../../src/daemon/ceilings.ts";

Deno.test("INT_MAX is 2^31 - 1", () => {
  assert.equal(INT_MAX, 2 ** 31 - 1);
});

Deno.test("withinDomain accepts only values the sysctl takes with their plain meaning", () => {
  const cases: [string, number[], boolean][] = [
    ["net.ipv4.tcp_rmem", [4096, 131072, 6291456], true],
    ["net.ipv4.tcp_rmem", [4096, 131072, INT_MAX], true],
    ["net.ipv4.tcp_rmem", [4096, 131072, INT_MAX + 1], false],
    ["net.ipv4.tcp_rmem", [0, 131072, 6291456], false], // 0 is rejected by the kernel
    ["net.ipv4.tcp_wmem", [4096, 16384, 0], false],
    ["net.ipv4.tcp_wmem", [4096, 16384, 1.5], false],
    ["net.ipv4.tcp_wmem", [4096, 16384, NaN], false],
    ["net.ipv4.tcp_mem", [3e9, 4e9, 6e9], true], // long sysctl: past 2^31 is fine
    ["net.ipv4.tcp_mem", [0, 4e9, 6e9], false], // 0 would starve TCP, not mean "small"
    ["net.ipv4.tcp_mem", [1, 2, Number.MAX_SAFE_INTEGER + 1], false],
    ["net.ipv4.tcp_max_syn_backlog", [0], false],
    ["net.ipv4.tcp_max_syn_backlog", [1], true],
    ["net.ipv4.tcp_moderate_rcvbuf", [0], true],
    ["net.ipv4.tcp_moderate_rcvbuf", [1], true],
    ["net.ipv4.tcp_moderate_rcvbuf", [2], false],
    ["net.core.high_order_alloc_disable", [-1], false],
    ["net.ipv4.tcp_syncookies", [2], true],
    ["net.ipv4.tcp_syncookies", [3], false],
    ["net.ipv4.some_int", [0], true],
    ["net.ipv4.some_int", [-1], false],
    ["net.ipv4.some_int", [INT_MAX + 1], false],
    ["net.ipv4.tcp_rmem", [], false],
  ];
  for (const [sysctl, values, ok] of cases) {
    assert.equal(withinDomain(sysctl, values), ok, `${sysctl} ${JSON.stringify(values)}`);
  }
});

Deno.test("clampGrowth: clamps to the ceiling, never shrinks", () => {
  const cases: [number, number, number, number][] = [
    // current, proposed, ceiling, expected
    [100, 125, 1000, 125],
    [100, 125, 110, 110], // growth past the ceiling is clamped to it
    [100, 125, 125, 125],
    [100, 125, 100, 100], // at the ceiling: no growth
    [200, 250, 150, 200], // already above the ceiling: stays, never lowered
    [100, 90, 1000, 100], // a "growth" below current is no growth
    [3e9, 3.75e9, 2 ** 40, 3.75e9],
  ];
  for (const [current, proposed, ceiling, expected] of cases) {
    assert.equal(clampGrowth(current, proposed, ceiling), expected, `${current}->${proposed}`);
  }
});

Deno.test("clampShrink: clamps to the floor, never grows", () => {
  const cases: [number, number, number, number][] = [
    [1000, 750, 100, 750],
    [1000, 750, 800, 800],
    [1000, 750, 1000, 1000],
    [500, 375, 800, 500], // already below the floor: stays, never raised
    [1000, 1100, 100, 1000],
  ];
  for (const [current, proposed, floor, expected] of cases) {
    assert.equal(clampShrink(current, proposed, floor), expected, `${current}->${proposed}`);
  }
});

Deno.test("tcpMemCeilings: 1/16, 1/8 and 1/4 of the free-buffer pages, exact when huge", () => {
  assert.deepEqual(tcpMemCeilings(1_000_000), { min: 62500, pressure: 125000, max: 250000 });
  assert.deepEqual(tcpMemCeilings(1_000_003), { min: 62500, pressure: 125000, max: 250000 });
  const huge = 2 ** 40 + 7;
  assert.deepEqual(tcpMemCeilings(huge), { min: 2 ** 36, pressure: 2 ** 37, max: 2 ** 38 + 1 });
  assert.deepEqual(tcpMemCeilings(0), { min: 0, pressure: 0, max: 0 });
});

Deno.test("kernelDefaultTcpMem reproduces tcp_init_mem (values seen on a 24 GB host)", () => {
  assert.deepEqual(kernelDefaultTcpMem(383868 * 16 + 5), [287901, 383868, 575802]);
  // tiny machines: limit never below 128 pages
  assert.deepEqual(kernelDefaultTcpMem(1000), [96, 128, 192]);
});

Deno.test("kernelDefaultTcpBufferMax follows tcp_init, including the 6.16 rmem change", () => {
  const big = 6_000_000; // pages: 1/128 in bytes is far above every cap
  assert.deepEqual(kernelDefaultTcpBufferMax(big, 4096, { major: 6, minor: 18 }), {
    wmem: 4194304,
    rmem: 33554432,
  });
  assert.deepEqual(kernelDefaultTcpBufferMax(big, 4096, { major: 6, minor: 15 }), {
    wmem: 4194304,
    rmem: 6291456,
  });
  assert.equal(kernelDefaultTcpBufferMax(big, 4096, { major: 5, minor: 15 }).rmem, 6291456);
  assert.equal(kernelDefaultTcpBufferMax(big, 4096, { major: 7, minor: 0 }).rmem, 33554432);
  assert.equal(kernelDefaultTcpBufferMax(big, 4096).rmem, 33554432);
  // small: limit = 100000 * 4096 / 128 = 3.2 MB
  assert.deepEqual(kernelDefaultTcpBufferMax(100_000, 4096, { major: 6, minor: 1 }), {
    wmem: 3_200_000,
    rmem: 3_200_000,
  });
  // tiny: floors of 64 KiB and 128 KiB
  assert.deepEqual(kernelDefaultTcpBufferMax(1000, 4096), { wmem: 65536, rmem: 131072 });
});

Deno.test("socketBufferCeiling: an eighth of tcp_mem[2] in bytes, never past INT_MAX", () => {
  assert.equal(socketBufferCeiling(575802, 4096), 294_810_624);
  assert.equal(socketBufferCeiling(10_000_000, 4096), INT_MAX);
  assert.equal(socketBufferCeiling(4194304, 4096), INT_MAX); // exactly 2^31 bytes -> INT_MAX
  assert.equal(socketBufferCeiling(0, 4096), 0);
});

const ZONEINFO = `Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 7371
  pages free     3840
        boost    0
        min      49
        low      61
        high     73
        promo    85
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 2990, 4998, 4998, 4998)
  pagesets
    cpu: 0
              count: 0
              high:  0
              batch: 1
  node_unreclaimable:  0
Node 0, zone    DMA32
  pages free     772917
        min      10037
        high     15055
        managed  772917
  pagesets
    cpu: 0
              count: 12
              high:  252
Node 0, zone   Normal
  pages free     18920
        high     10212
        managed  524288
Node 0, zone  Movable
  pages free     0
        high     32
        managed  100000
Node 1, zone   Normal
  pages free     5
        high     200
        managed  100
Node 1, zone  HighMem
        high     10
        managed  5000
`;

Deno.test("parseZoneinfo reads zone-level high/managed and ignores per-CPU 'high:' lines", () => {
  assert.deepEqual(parseZoneinfo(ZONEINFO), [
    { node: 0, name: "DMA", managed: 3840, high: 73 },
    { node: 0, name: "DMA32", managed: 772917, high: 15055 },
    { node: 0, name: "Normal", managed: 524288, high: 10212 },
    { node: 0, name: "Movable", managed: 100000, high: 32 },
    { node: 1, name: "Normal", managed: 100, high: 200 },
    { node: 1, name: "HighMem", managed: 5000, high: 10 },
  ]);
  assert.deepEqual(parseZoneinfo("garbage\nmore garbage\n"), []);
  assert.deepEqual(parseZoneinfo(""), []);
});

Deno.test("freeBufferPages counts DMA, DMA32 and Normal above the high watermark only", () => {
  // DMA 3767 + DMA32 757862 + Normal 514076; Movable/HighMem excluded; node 1 Normal < high -> 0
  assert.equal(freeBufferPages(parseZoneinfo(ZONEINFO)), 3767 + 757862 + 514076);
  // bpftune's source comment example: 3199514 managed - 20340 high
  assert.equal(
    freeBufferPages([{ node: 0, name: "Normal", managed: 3199514, high: 20340 }]),
    3179174,
  );
  assert.equal(freeBufferPages([]), 0);
});

Deno.test("readFreeBufferPages: reads a zoneinfo file, clear errors when it cannot", () => {
  const dir = mkdtempSync(join(tmpdir(), "bpfpilot-ceilings-"));
  try {
    const good = join(dir, "zoneinfo");
    writeFileSync(good, ZONEINFO);
    assert.equal(readFreeBufferPages(good), 3767 + 757862 + 514076);

    const missing = join(dir, "absent");
    assert.throws(
      () => readFreeBufferPages(missing),
      (e: unknown) =>
        e instanceof ZoneinfoError && e.message.includes(missing) &&
        e.message.includes("ENOENT") && e.message.includes("tcp_mem will not be grown"),
    );

    const empty = join(dir, "empty");
    writeFileSync(empty, "Node 0, zone Movable\n        high 1\n        managed 0\n");
    assert.throws(
      () => readFreeBufferPages(empty),
      (e: unknown) =>
        e instanceof ZoneinfoError && e.message.includes("no DMA, DMA32 or Normal zone"),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
