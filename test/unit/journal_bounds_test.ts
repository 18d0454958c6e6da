import assert from "node:assert/strict";
import { Journal, MAX_OVERRIDES } from "../../src/daemon/journal.ts";

function withJournal(fn: (j: Journal) => void) {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-bounds-" });
  try {
    fn(Journal.open(dir));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const override = (netns: string, sysctl = "net.ipv4.tcp_rmem") => ({
  netns,
  sysctl,
  tuner: "tcp_buffer",
  pid: 1,
  comm: "sysctl",
});

Deno.test("pruneNetns forgets entries and overrides of gone namespaces only", () => {
  withJournal((j) => {
    j.recordOriginal("ns:1", "net.ipv4.tcp_rmem", "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    j.recordOriginal("ns:2", "net.ipv4.tcp_rmem", "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    j.recordOriginal("global", "net.ipv4.tcp_rmem", "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    j.markOverride(override("ns:1"));
    j.markOverride(override("ns:3"));
    j.markOverride(override("global", "net.ipv4.tcp_wmem"));
    const asked: string[] = [];
    const n = j.pruneNetns((k) => {
      asked.push(k);
      return k !== "ns:2";
    });
    assert.equal(n, 3);
    assert.deepEqual(asked.sort(), ["ns:1", "ns:2", "ns:3"], "global is never asked");
    assert.deepEqual(j.changedEntries().map((e) => e.netns).sort(), ["global", "ns:2"]);
    assert.deepEqual(j.overrides().map((o) => o.netns), ["global"]);
    assert.equal(j.pruneNetns(() => true), 1, "only ns:2's entry is left to prune");
  });
});

Deno.test("override records are capped; the oldest of other namespaces go first", () => {
  withJournal((j) => {
    j.markOverride(override("global"));
    for (let i = 0; i < MAX_OVERRIDES + 10; i++) j.markOverride(override(`ns:${i}`));
    const all = j.overrides();
    assert.equal(all.length, MAX_OVERRIDES);
    assert.equal(all[0].netns, "global", "the host's override is kept");
    assert.equal(all[1].netns, "ns:11");
    assert.equal(all.at(-1)!.netns, `ns:${MAX_OVERRIDES + 9}`);
  });
});
