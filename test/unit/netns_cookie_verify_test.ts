/**
 * netnsCookieOf with `verify` never hands back the registry's cookie when it could not read the
 * namespace's own: that cookie may be a dead namespace's whose inode a new one took (a record
 * written with it is later dropped as a reused inode's, an override held against the wrong
 * namespace). The registry here holds a path that no longer opens the namespace.
 */
import assert from "node:assert/strict";
import { type NetnsFs, NetnsRegistry } from "../../src/kernel/netns_registry.ts";
import { netnsCookieOf, ownNetnsInum, useNetnsRegistry } from "../../src/kernel/netns.ts";

const NSFS = 4;
/** A name no host has: opening it fails, as a dead namespace's path does. */
const GONE = "bpfp-no-such-netns-0f3c";

function staleRegistry(): NetnsRegistry {
  const fs: NetnsFs = {
    list: (dir) => dir === "/run/netns" ? [GONE] : [],
    stat: (path) =>
      path === "/proc/self/ns/net"
        ? { dev: NSFS, ino: ownNetnsInum() }
        : path === `/run/netns/${GONE}`
        ? { dev: NSFS, ino: 4000000900n }
        : null,
  };
  const reg = new NetnsRegistry({ fs, ownInum: ownNetnsInum() });
  reg.discover();
  assert.ok(reg.confirmCookie(4000000900n, 41n), "the cookie learnt before (now a dead one's)");
  return reg;
}

Deno.test("netnsCookieOf verify: unknown (undefined) when no path opens the namespace now, never the held cookie", () => {
  useNetnsRegistry(staleRegistry());
  try {
    assert.equal(netnsCookieOf("ns:4000000900", { verify: true }), undefined);
    assert.equal(netnsCookieOf("ns:4000000900"), 41n, "unverified: the registry's, as documented");
    assert.equal(netnsCookieOf("ns:4000000901", { verify: true }), undefined, "not known at all");
    assert.equal(netnsCookieOf("global", { verify: true }), null, "the host has no cookie key");
  } finally {
    useNetnsRegistry(new NetnsRegistry({ ownInum: ownNetnsInum() }));
  }
});
