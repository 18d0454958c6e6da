import assert from "node:assert/strict";
import { forgetNetnsKeys, netnsOfKey } from "../../src/kernel/netns_keyed.ts";

Deno.test("netnsOfKey: the part before the first NUL; a key without one is all namespace", () => {
  assert.equal(netnsOfKey("ns:7\0net.ipv4.tcp_rmem"), "ns:7");
  assert.equal(netnsOfKey("ns:7\0tcp_buffer\0net.ipv4.tcp_rmem"), "ns:7");
  assert.equal(netnsOfKey("ns:7"), "ns:7");
  assert.equal(netnsOfKey("\0x"), "");
});

Deno.test("forgetNetnsKeys: every key of the gone namespaces goes, in one pass; a prefix namespace stays", () => {
  const map = new Map<string, number>();
  const set = new Set<string>();
  for (let ns = 1; ns <= 100; ns++) {
    for (const s of ["a", "b", "c"]) {
      map.set(`${ns}\0${s}`, ns);
      set.add(`${ns}\0${s}`);
    }
  }
  const gone = new Set(["1", "2", "50"]);
  let visits = 0;
  const counted = { keys: () => (visits++, map.keys()), delete: (k: string) => map.delete(k) };
  assert.equal(forgetNetnsKeys(counted, gone), 9);
  assert.equal(visits, 1, "one pass over the store for all the gone namespaces");
  assert.equal(map.size, 291);
  assert.equal(map.has("10\0a"), true, "namespace 10 is not namespace 1");
  assert.equal(map.has("1\0a") || map.has("50\0c"), false);
  assert.equal(forgetNetnsKeys(set, gone), 9);
  assert.equal(set.size, 291);
  assert.equal(forgetNetnsKeys(set, new Set()), 0);
});

Deno.test("forgetNetnsKeys: drop removes each key (e.g. closing its file first)", () => {
  const map = new Map([["1\0a", 10], ["1\0b", 11], ["2\0a", 20]]);
  const closed: number[] = [];
  const n = forgetNetnsKeys(map, new Set(["1"]), (k) => {
    closed.push(map.get(k)!);
    map.delete(k);
  });
  assert.equal(n, 2);
  assert.deepEqual(closed, [10, 11]);
  assert.deepEqual([...map.keys()], ["2\0a"]);
});
