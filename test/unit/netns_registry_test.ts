import assert from "node:assert/strict";
import { type NetnsFs, NetnsRegistry } from "../../src/kernel/netns_registry.ts";

const NSFS = 4;

/**
 * A file system of namespace files: path -> inode on nsfs (symlinks: follow-only entries; other
 * files: present, on another device). A directory's stamp is its listing (an mtime changes with it).
 */
function fakeFs(
  files: Map<string, bigint>,
  symlinks = new Set<string>(),
  others = new Set<string>(),
): NetnsFs & { stats: number } {
  const fs = {
    stats: 0,
    stamp(dir: string) {
      const names = fs.list(dir).sort();
      return names.length ? names.join("/") : null;
    },
    list(dir: string) {
      const names = new Set<string>();
      for (const p of [...files.keys(), ...symlinks, ...others]) {
        if (p.startsWith(`${dir}/`)) names.add(p.slice(dir.length + 1).split("/")[0]);
      }
      return [...names];
    },
    stat(path: string, follow: boolean) {
      fs.stats++;
      if (path === "/proc/self/ns/net") return { dev: NSFS, ino: 1n };
      if (!follow && symlinks.has(path)) return null;
      if (others.has(path)) return { dev: NSFS + 1, ino: 5n };
      const ino = files.get(path);
      return ino === undefined ? null : { dev: NSFS, ino };
    },
  };
  return fs;
}

function registry(fs: NetnsFs, opts: { cap?: number } = {}) {
  const log: string[] = [];
  const destroyed: bigint[] = [];
  let now = 0;
  const r = new NetnsRegistry({
    fs,
    ownInum: 1n,
    cap: opts.cap,
    rescanGapMs: 1000,
    now: () => now,
    debug: (m) => log.push(m),
    onDestroyed: (i) => destroyed.push(i),
  });
  return { r, log, destroyed, advance: (ms: number) => now += ms };
}

/** A registry that has discovered only the host's namespace, 5 s ago (past every gap). */
function startedRegistry() {
  const files = new Map<string, bigint>([["/proc/1/ns/net", 1n]]);
  const fs = fakeFs(files);
  const reg = registry(fs);
  reg.r.discover();
  reg.advance(5000);
  return { ...reg, files, fs };
}

Deno.test("discovery: names first, then processes; the own namespace is not registered", () => {
  const files = new Map<string, bigint>([
    ["/proc/1/ns/net", 1n],
    ["/proc/50/ns/net", 100n],
    ["/proc/51/ns/net", 200n],
    ["/run/netns/web", 100n],
    ["/run/docker/netns/abc123", 300n],
    ["/run/user/1000/netns/netns-x", 400n],
  ]);
  const { r, log } = registry(fakeFs(files));
  r.discover();
  assert.equal(r.size, 4);
  assert.equal(r.nameOf(100n), "web");
  assert.equal(r.cachedPathOf(100n), "/run/netns/web");
  assert.equal(r.nameOf(200n), null);
  assert.equal(r.nameOf(300n), "abc123");
  assert.equal(r.nameOf(400n), "netns-x");
  assert.equal(r.inumNamed("abc123"), 300n); // query --netns <name>
  assert.equal(r.inumNamed("nope"), null);
  assert.ok(!r.knows(1n));
  assert.ok(log.includes("netns created ('web', inode 100)"), log.join("\n"));
  assert.ok(log.includes("netns created (inode 200)"));
});

Deno.test("a symlink in a user's runtime directory is not followed", () => {
  const files = new Map<string, bigint>([["/run/netns/root-only", 100n]]);
  const links = new Set(["/run/user/1000/netns/evil"]);
  files.set("/run/user/1000/netns/evil", 100n); // what following it would find
  const { r } = registry(fakeFs(files, links));
  r.discover();
  assert.equal(r.nameOf(100n), "root-only");
  const only = new Map<string, bigint>([["/run/user/1000/netns/evil", 500n]]);
  const { r: r2 } = registry(fakeFs(only, new Set(["/run/user/1000/netns/evil"])));
  r2.discover();
  assert.ok(!r2.knows(500n));
});

Deno.test("an event's pid finds a new namespace with one stat; else a rate-limited rescan", async () => {
  const { r, advance, files, fs } = startedRegistry();
  files.set("/proc/77/ns/net", 700n);
  const before = fs.stats;
  r.observe(700n, 77);
  assert.equal(fs.stats - before, 1);
  assert.equal(r.cachedPathOf(700n), "/proc/77/ns/net");
  // Unknown and not the pid's: one background scan, then none within the gap.
  files.set("/proc/99/ns/net", 800n); // unnamed: only a scan of /proc finds it
  r.observe(800n, 77);
  await r.tick();
  assert.ok(r.knows(800n));
  const scans = r.scans;
  files.set("/run/netns/later", 900n);
  r.observe(900n, 77);
  r.observe(900n, 77);
  assert.equal(r.tick(), null);
  assert.equal(r.scans, scans, "no second scan within the gap");
  advance(1000);
  await r.tick();
  assert.ok(r.knows(900n), "the wanted scan ran once the gap passed");
});

Deno.test("a scan forgets destroyed namespaces and says so", async () => {
  const files = new Map<string, bigint>([["/run/netns/a", 100n], ["/proc/9/ns/net", 200n]]);
  const { r, log, destroyed, advance } = registry(fakeFs(files));
  r.discover();
  files.delete("/run/netns/a");
  advance(5000);
  r.requestRescan();
  await r.tick();
  assert.deepEqual(destroyed, [100n]);
  assert.ok(!r.knows(100n));
  assert.ok(r.knows(200n));
  assert.ok(log.includes("netns destroyed ('a', inode 100)"));
});

Deno.test("bounded: over the cap the least recently used unnamed namespace goes", () => {
  const files = new Map<string, bigint>([["/run/netns/named", 5n]]);
  for (let i = 10; i < 20; i++) files.set(`/proc/${i}/ns/net`, BigInt(i * 10));
  const { r } = registry(fakeFs(files), { cap: 4 });
  r.discover();
  assert.equal(r.size, 4);
  assert.ok(r.knows(5n), "named namespaces are kept");
});

Deno.test("a reused inode with another cookie is a new namespace: the old one is destroyed", () => {
  const files = new Map<string, bigint>([["/run/netns/a", 100n]]);
  const { r, destroyed } = registry(fakeFs(files));
  r.discover();
  assert.ok(r.confirmCookie(100n, 41n));
  assert.ok(r.confirmCookie(100n, 41n));
  assert.ok(!r.confirmCookie(100n, 42n), "refused: the namespace behind the inode changed");
  assert.deepEqual(destroyed, [100n]);
  assert.ok(r.confirmCookie(100n, 42n), "the new one is then known");
  assert.ok(r.confirmCookie(100n, null), "no cookie on this kernel: the inode is all there is");
});

Deno.test("a stale /proc path: the named directories give the lasting path at once, rate-limited", () => {
  const { r, advance, files } = startedRegistry();
  // A short-lived process in two new namespaces (ip netns add'ed): found through its pid.
  files.set("/proc/77/ns/net", 700n);
  r.observe(700n, 77);
  files.set("/proc/77/ns/net", 800n);
  r.observe(800n, 77);
  files.set("/run/netns/a", 700n);
  files.set("/run/netns/b", 800n);
  files.delete("/proc/77/ns/net"); // it moved on (or exited) before its event was handled
  assert.equal(r.pathWentStale(700n), "/run/netns/a");
  assert.equal(r.nameOf(700n), "a");
  assert.equal(r.cachedPathOf(800n), "/run/netns/b", "every known namespace found on the way");
  files.set("/run/netns/new", 850n);
  advance(250);
  files.set("/proc/80/ns/net", 860n);
  r.observe(860n, 80);
  files.set("/run/netns/x", 860n);
  files.delete("/proc/80/ns/net");
  assert.equal(r.pathWentStale(860n), "/run/netns/x");
  assert.equal(r.cachedPathOf(850n), "/run/netns/new", "named ones not seen yet are registered");
  // Within the gap no second look (a rescan is asked for instead; one just ran).
  r.requestRescan();
  files.set("/proc/78/ns/net", 900n);
  r.observe(900n, 78);
  files.set("/run/netns/c", 900n);
  files.delete("/proc/78/ns/net");
  assert.equal(r.pathWentStale(900n), null);
  assert.equal(r.nameOf(900n), null);
  advance(250);
  assert.equal(r.pathWentStale(900n), "/run/netns/c");
  // Not named anywhere: null (a background rescan looks through /proc).
  files.set("/proc/79/ns/net", 990n);
  r.observe(990n, 79);
  files.delete("/proc/79/ns/net");
  advance(250);
  assert.equal(r.pathWentStale(990n), null);
});

Deno.test("an unknown namespace whose event's process moved on is found by name at once", () => {
  const { r, files } = startedRegistry();
  // Created after start, never seen: its only process is elsewhere when the event is handled.
  files.set("/run/netns/first", 710n);
  files.set("/proc/81/ns/net", 720n);
  r.observe(710n, 81);
  assert.equal(r.cachedPathOf(710n), "/run/netns/first");
  assert.equal(r.nameOf(710n), "first");
});

Deno.test("the periodic look: a changed name, a stale process path or a minute bring a full scan", async () => {
  const files = new Map<string, bigint>([
    ["/proc/1/ns/net", 1n],
    ["/proc/20/ns/net", 1n],
    ["/proc/30/ns/net", 300n],
    ["/run/netns/a", 100n],
  ]);
  const fs = fakeFs(files);
  const { r, advance, destroyed } = registry(fs);
  r.discover();
  // Nothing changed: one stat, of the namespace known through a process; no scan.
  const scans = r.scans;
  let stats = fs.stats;
  advance(10_000);
  r.refresh();
  assert.equal(r.tick(), null, "no scan running");
  assert.equal(fs.stats - stats, 1);
  assert.equal(r.lightLooks, 1);
  // A new process in a new namespace, or one that entered another: not seen until a full scan
  // (or an event from it).
  files.set("/proc/40/ns/net", 400n);
  files.set("/proc/20/ns/net", 410n);
  advance(10_000);
  r.refresh();
  assert.ok(!r.knows(400n) && !r.knows(410n));
  advance(40_000); // a minute since the last full scan
  r.refresh();
  await r.tick();
  assert.ok(r.knows(400n) && r.knows(410n));
  assert.equal(r.scans, scans + 1);
  // A name added (or removed) changes its directory: a full scan.
  files.set("/run/netns/b", 500n);
  advance(10_000);
  r.refresh();
  await r.tick();
  assert.equal(r.nameOf(500n), "b");
  files.delete("/run/netns/a");
  advance(10_000);
  r.refresh();
  await r.tick();
  assert.deepEqual(destroyed, [100n]);
  // The process a namespace is known through exited: a full scan (the namespace is gone).
  assert.equal(r.cachedPathOf(300n), "/proc/30/ns/net");
  files.delete("/proc/30/ns/net");
  advance(10_000);
  stats = r.scans;
  r.refresh();
  await r.tick();
  assert.equal(r.scans, stats + 1);
  assert.deepEqual(destroyed, [100n, 300n]);
});

Deno.test("a name that is not a namespace yet (ip netns add mounts after creating it): full scans until it is", async () => {
  const files = new Map<string, bigint>([["/run/netns/a", 100n]]);
  const others = new Set(["/run/netns/b"]);
  const { r, advance } = registry(fakeFs(files, new Set(), others));
  r.discover();
  for (let i = 0; i < 2; i++) {
    const scans = r.scans;
    advance(10_000);
    r.refresh();
    await r.tick();
    assert.equal(r.scans, scans + 1, "a full scan each time");
  }
  others.delete("/run/netns/b");
  files.set("/run/netns/b", 200n); // mounted: the same listing, so the same stamp
  advance(10_000);
  r.refresh();
  await r.tick();
  assert.equal(r.nameOf(200n), "b");
  const scans = r.scans;
  advance(10_000);
  r.refresh();
  await r.tick();
  assert.equal(r.scans, scans, "settled: a light look");
});

Deno.test("without stamps every periodic look is a full scan", async () => {
  const files = new Map<string, bigint>([["/run/netns/a", 100n]]);
  const fs: NetnsFs = { ...fakeFs(files) };
  delete fs.stamp;
  const { r, advance } = registry(fs);
  r.discover();
  advance(10_000);
  r.refresh();
  await r.tick();
  assert.equal(r.scans, 2);
});

Deno.test("pathWentStale now: looked for within the gap once per namespace between scans", async () => {
  const { r, advance, files } = startedRegistry();
  files.set("/run/netns/old", 700n);
  r.discover();
  // The named namespace died; a new one took its inode under another name (a reused inode).
  files.delete("/run/netns/old");
  files.set("/run/netns/heir", 700n);
  r.observe(999n, 0); // a named look just ran (for an unknown namespace's event)
  assert.equal(r.pathWentStale(700n), null, "within the gap: no look");
  assert.equal(r.pathWentStale(700n, { now: true }), "/run/netns/heir", "a named entry's too");
  assert.equal(r.nameOf(700n), "heir");
  files.delete("/run/netns/heir");
  files.set("/run/netns/heir2", 700n);
  assert.equal(r.pathWentStale(700n, { now: true }), null, "once per namespace between scans");
  advance(5000);
  await r.tick(); // the rescan asked for
  assert.equal(r.cachedPathOf(700n), "/run/netns/heir2", "a full scan finds it");
});

Deno.test("pathWentStale now: at most 16 looks within the gap between two full scans", async () => {
  const { r, advance, files } = startedRegistry();
  for (let i = 0; i < 20; i++) files.set(`/proc/${200 + i}/ns/net`, BigInt(2000 + i));
  r.discover();
  for (let i = 0; i < 20; i++) files.delete(`/proc/${200 + i}/ns/net`);
  r.observe(999n, 0); // a named look just ran
  let looks = 0;
  for (let i = 0; i < 20; i++) {
    // Each one's name appears just before it is looked for: found only when a look runs.
    files.set(`/run/netns/n${i}`, BigInt(2000 + i));
    if (r.pathWentStale(BigInt(2000 + i), { now: true }) !== null) looks++;
  }
  assert.equal(looks, 16);
  advance(5000);
  await r.tick(); // the rescan asked for: a full scan renews the budget
  files.set("/proc/300/ns/net", 3000n);
  r.observe(3000n, 300);
  files.delete("/proc/300/ns/net");
  r.observe(998n, 0);
  files.set("/run/netns/late", 3000n);
  assert.equal(r.pathWentStale(3000n), null);
  assert.equal(r.pathWentStale(3000n, { now: true }), "/run/netns/late");
});
