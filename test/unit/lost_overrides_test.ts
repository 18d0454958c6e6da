import assert from "node:assert/strict";
import { findLostOverrides } from "../../src/daemon/lost_overrides.ts";
import type { JournalEntry } from "../../src/daemon/journal.ts";
import { managedNameKey, SY_NAME_LEN } from "../../src/tuners/sysctl.ts";

function entry(netns: string, sysctl: string, lastWritten: number[] | null, pending = null) {
  return {
    netns,
    sysctl,
    tuner: "tcp_buffer",
    original: [4096, 16384, 65536],
    lastWritten,
    pending,
    changes: lastWritten ? 1 : 0,
    recordedAt: "2026-01-01T00:00:00.000Z",
    changedAt: null,
  } satisfies JournalEntry;
}

Deno.test("lost override events: a value we wrote that is no longer live counts as the admin's", () => {
  const live: Record<string, number[] | null> = {
    "global net.ipv4.tcp_rmem": [4096, 131072, 7000000],
    "global net.ipv4.tcp_wmem": [4096, 16384, 81920],
    "ns:5 net.ipv4.tcp_rmem": [4096, 16384, 81920],
    "ns:6 net.ipv4.tcp_rmem": null,
  };
  const found = findLostOverrides(
    [
      entry("global", "net.ipv4.tcp_rmem", [4096, 131072, 7864320]), // changed by someone
      entry("global", "net.ipv4.tcp_wmem", [4096, 16384, 81920]), // still ours
      entry("ns:5", "net.ipv4.tcp_rmem", [4096, 16384, 70000]), // changed, but already recorded
      entry("ns:6", "net.ipv4.tcp_rmem", [4096, 16384, 70000]), // namespace gone
      entry("ns:7", "net.ipv4.tcp_rmem", null), // never written
    ],
    (netns) => netns === "ns:5",
    (netns, sysctl) => {
      if (netns === "ns:7") throw new Error("gone");
      return live[`${netns} ${sysctl}`] ?? null;
    },
  );
  assert.deepEqual(found, [{
    netns: "global",
    sysctl: "net.ipv4.tcp_rmem",
    live: [4096, 131072, 7000000],
  }]);
});

Deno.test("managed-name keys: the /proc/sys path NUL-padded to the program's key size", () => {
  const key = managedNameKey("net.ipv4.tcp_rmem")!;
  assert.equal(key.length, SY_NAME_LEN);
  assert.equal(new TextDecoder().decode(key.subarray(0, 17)), "net/ipv4/tcp_rmem");
  assert.ok(key.subarray(17).every((b) => b === 0));
  assert.equal(managedNameKey("net." + "x".repeat(70)), null);
});
