import assert from "node:assert/strict";
import { clampGrowth, clampShrink, INT_MAX, withinDomain } from "../../src/tuning/domain.ts";
import { tunableDomain } from "../../src/tuners/registry.ts";

Deno.test("INT_MAX is 2^31 - 1", () => {
  assert.equal(INT_MAX, 2 ** 31 - 1);
});

Deno.test("withinDomain: the tunables' declared domains accept only values with their plain meaning", () => {
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
    assert.equal(
      withinDomain(tunableDomain(sysctl), values),
      ok,
      `${sysctl} ${JSON.stringify(values)}`,
    );
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
