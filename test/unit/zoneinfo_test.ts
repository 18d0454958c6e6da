import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  freeBufferPages,
  parseZoneinfo,
  readFreeBufferPages,
  ZoneinfoError,
} from "../../src/kernel/proc/zoneinfo.ts";

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
