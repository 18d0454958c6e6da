/**
 * A journal record of a dead namespace whose inode number a new namespace took: `bpfpilot
 * rollback` must drop it and leave the new namespace alone (issue 12, stable identity). The
 * records are written by the real journal writer with the real cookies; the reuse is produced for
 * real (nsfs inode numbers come back quickly) or, if 200 new namespaces never get the dead one's
 * inode, by a record naming a live namespace's inode with the dead one's cookie — the same thing.
 */
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { IS_ROOT } from "../support/kernel.ts";
import { LAUNCHER, type TestNetns } from "../support/daemon.ts";
import { type Sandbox, withSandbox } from "../support/sandbox.ts";
import { Journal } from "../../src/daemon/journal.ts";
import {
  heldNetnsCookie,
  netnsCookieOf,
  NetnsGoneError,
  netnsRegistry,
  ownNetnsInum,
  useNetnsRegistry,
} from "../../src/kernel/netns.ts";
import { NetnsRegistry } from "../../src/kernel/netns_registry.ts";
import { liveSysctls } from "../../src/daemon/sysctl_io.ts";
import { rollbackFromJournal, visitEachOnce } from "../../src/daemon/rollback.ts";
import { SysctlFiles } from "../../src/kernel/sysctl_files.ts";
import { recordingLog } from "../support/fake_context.ts";

/** `bpfpilot rollback` of `state`, which must succeed: its output. */
function rollback(state: string): string {
  const out = new Deno.Command(LAUNCHER, {
    args: ["rollback", "--state-dir", state],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  return text;
}

const RMEM = "net.ipv4.tcp_rmem";
/** An admin's write of tcp_rmem in `netns`, as the override detector reports it. */
const override = (netns: string) => ({
  netns,
  sysctl: RMEM,
  tuner: "tcp_buffer",
  pid: 1,
  comm: "sysctl",
});
const ATTEMPTS = 200;

const inodeOf = (ns: TestNetns) => BigInt(statSync(`/run/netns/${ns.name}`).ino);

/**
 * Deletes `dead` and creates namespaces in the sandbox (deleted with it) until one takes its
 * inode number. `real` false: none did in ATTEMPTS, and `heir` is the last one created (the
 * caller then names its inode in the dead namespace's records itself).
 */
async function reuseInodeOf(
  sb: Sandbox,
  dead: TestNetns,
  prefix: string,
): Promise<{ heir: TestNetns; key: string; real: boolean }> {
  const deadInode = inodeOf(dead);
  dead.delete();
  let real = false;
  let heir = dead;
  let created = 0;
  while (created < ATTEMPTS && !real) {
    await new Promise((r) => setTimeout(r, 20)); // namespaces are freed by a workqueue
    heir = sb.netns(`${prefix}-r${created++}`);
    real = inodeOf(heir) === deadInode;
  }
  console.log(`inode reused for real: ${real} (${created} created)`);
  return { heir, key: `ns:${inodeOf(heir)}`, real };
}

Deno.test({
  name: "rollback drops a dead namespace's record and never writes into the one with its inode",
  ignore: !IS_ROOT,
  // Every sysctl touched is inside the sandbox's namespaces: deleting them restores the rest.
  fn: () =>
    withSandbox("nsck-ctl", async (sb) => {
      const { ns: control, state } = sb;
      const dead = sb.netns("nsck-dead");
      const deadKey = `ns:${inodeOf(dead)}`;
      const controlKey = `ns:${inodeOf(control)}`;
      const live = control.sysctl(RMEM);
      const original = [live[0], live[1], live[2] - 4096];
      const deadCookie = netnsCookieOf(deadKey);
      if (deadCookie === null) {
        throw new Error("this kernel has no SO_NETNS_COOKIE; the test needs 5.14+");
      }
      const journal = Journal.open(state, { netnsCookie: netnsCookieOf });
      for (const key of [deadKey, controlKey]) {
        journal.recordOriginal(key, RMEM, "tcp_buffer", original, live);
        journal.recordWritten(key, RMEM, live);
      }
      journal.close();

      const { heir, key: heirKey, real } = await reuseInodeOf(sb, dead, "nsck");
      if (!real) {
        // No reuse produced: name a live namespace's inode with the dead one's cookie.
        const j = Journal.open(state, { netnsCookie: () => deadCookie });
        j.forget(deadKey, RMEM);
        j.recordOriginal(heirKey, RMEM, "tcp_buffer", original, live);
        j.recordWritten(heirKey, RMEM, live);
        j.close();
      }
      const saved = JSON.parse(Deno.readTextFileSync(`${state}/state.json`));
      assert.equal(
        saved.entries.find((e: { netns: string }) => e.netns === heirKey)?.netnsCookie,
        String(deadCookie),
      );
      assert.notEqual(netnsCookieOf(controlKey), null);
      assert.deepEqual(heir.sysctl(RMEM), live, "the new namespace is at the journal's last write");

      const text = rollback(state);
      assert.deepEqual(heir.sysctl(RMEM), live, `nothing written into the new namespace\n${text}`);
      assert.deepEqual(control.sysctl(RMEM), original, `the live one is restored\n${text}`);
      assert.match(
        text,
        new RegExp(
          `netns inode ${heirKey.slice(3)} was reused by a new namespace; dropped the record ` +
            `for the old one`,
        ),
      );
      const after = Journal.open(state, { create: false });
      assert.deepEqual(after.changedEntries(), [], "the dead namespace's record is dropped");
      after.close();
    }),
});

Deno.test({
  name: "an override of a dead namespace does not silence the new one at its inode before a prune",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("nsov-ctl", async (sb) => {
      const { ns: control, state } = sb;
      // As the daemon's journal: cookies verified by entering the namespace.
      const verified = (key: string) => netnsCookieOf(key, { verify: true });
      const dead = sb.netns("nsov-dead");
      netnsRegistry().discover(); // this process's registry may predate them
      const deadKey = `ns:${inodeOf(dead)}`;
      const controlKey = `ns:${inodeOf(control)}`;
      // Verified: the registry may still hold the cookie of the previous test's namespace that
      // had this inode (the very staleness this test is about).
      const deadCookie = verified(deadKey);
      if (deadCookie === null) {
        throw new Error("this kernel has no SO_NETNS_COOKIE; the test needs 5.14+");
      }
      const journal = Journal.open(state, { netnsCookie: verified });
      for (const key of [deadKey, controlKey]) journal.markOverride(override(key));
      journal.close();

      const { key: heirKey, real } = await reuseInodeOf(sb, dead, "nsov");
      if (!real) {
        // No reuse produced: the dead namespace's override names a live namespace's inode.
        const j = Journal.open(state, { netnsCookie: () => deadCookie });
        j.markOverride(override(heirKey));
        j.close();
      }
      // A registry scan finds the inode again and keeps the entry with the dead one's cookie.
      netnsRegistry().discover();

      const j = Journal.open(state, { netnsCookie: verified });
      try {
        assert.ok(
          j.overrides().some((o) => o.netns === heirKey && o.netnsCookie === String(deadCookie)),
          "the dead namespace's override is still recorded (no prune yet)",
        );
        assert.equal(j.isOverridden(heirKey, RMEM), false, "the new namespace is tuned");
        assert.equal(j.isTunerOverridden(heirKey, "tcp_buffer"), false);
        assert.equal(j.isOverridden(controlKey, RMEM), true, "the live namespace's override holds");
        assert.equal(j.isTunerOverridden(controlKey, "tcp_buffer"), true);
      } finally {
        j.close();
      }
    }),
});

Deno.test({
  name: "rollback on a later boot never writes an earlier boot's record into a live namespace",
  ignore: !IS_ROOT,
  // Every sysctl touched is inside the sandbox's namespaces: deleting them restores the rest.
  fn: () =>
    withSandbox("nsbt-ctl", (sb) => {
      const { ns: control, state } = sb;
      const other = sb.netns("nsbt-live");
      const controlKey = `ns:${inodeOf(control)}`;
      const otherKey = `ns:${inodeOf(other)}`;
      const live = control.sysctl(RMEM);
      assert.deepEqual(other.sysctl(RMEM), live);
      const original = [live[0], live[1], live[2] - 4096];
      // A registry of this test's own: the tests before it reused inode numbers on purpose, and
      // where the one they left holds a dead namespace's path for an inode, entering by that path
      // fails and (the named directories looked through less than 250 ms before) the dead
      // namespace's cookie came back: the record was written with it and rollback took it for a
      // reused inode (once in a suite run).
      const fresh = new NetnsRegistry({ ownInum: ownNetnsInum() });
      fresh.discover();
      useNetnsRegistry(fresh);
      const verified = (key: string) => netnsCookieOf(key, { verify: true });
      const tuned = (key: string, bootId?: () => string) => {
        const j = Journal.open(state, { netnsCookie: verified, bootId });
        j.recordOriginal(key, RMEM, "tcp_buffer", original, live);
        j.recordWritten(key, RMEM, live);
        j.close();
      };
      // control's record as a boot before this one left it, with its very inode and cookie (a
      // reboot can give a new namespace both); other's as this boot's.
      tuned(controlKey, () => "boot-before-this-one");
      tuned(otherKey);
      const text = rollback(state);
      assert.deepEqual(control.sysctl(RMEM), live, `nothing written into it\n${text}`);
      assert.deepEqual(other.sysctl(RMEM), original, `this boot's record is restored\n${text}`);
      assert.match(text, /its namespace is gone \(it was of an earlier boot/);
      const after = Journal.open(state, { create: false });
      assert.deepEqual(after.changedEntries(), [], "the earlier boot's record is dropped");
      after.close();
    }),
});

Deno.test({
  name:
    "a registry holding a dead namespace's path: the verified cookie is the live one's or unknown, never the dead one's",
  ignore: !IS_ROOT,
  // Every sysctl touched is inside the sandbox's namespaces: deleting them restores the rest.
  fn: () =>
    withSandbox("nsvf-ctl", async (sb) => {
      const { state } = sb;
      // The daemon's registry between two scans: its clock stands still, so every look through
      // the named directories after the first is within the 250 ms gap (and no rescan runs).
      const at = performance.now();
      const reg = new NetnsRegistry({ ownInum: ownNetnsInum(), now: () => at });
      useNetnsRegistry(reg);
      const verified = (key: string) => netnsCookieOf(key, { verify: true });
      try {
        const dead = sb.netns("nsvf-dead");
        const deadInode = inodeOf(dead);
        reg.discover();
        const deadCookie = verified(`ns:${deadInode}`);
        if (deadCookie === null || deadCookie === undefined) {
          throw new Error("this kernel has no SO_NETNS_COOKIE; the test needs 5.14+");
        }
        const journal = Journal.open(state, { netnsCookie: verified });
        journal.markOverride(override(`ns:${deadInode}`));
        journal.close();

        const { heir, key: heirKey, real } = await reuseInodeOf(sb, dead, "nsvf");
        const heirInode = inodeOf(heir);
        // The heir's cookie as a registry of its own reads it.
        const own = new NetnsRegistry({ ownInum: ownNetnsInum() });
        own.discover();
        useNetnsRegistry(own);
        const heirCookie = verified(heirKey);
        useNetnsRegistry(reg);
        assert.ok(typeof heirCookie === "bigint" && heirCookie !== deadCookie);
        /** reg's entry for the heir's inode: the dead namespace's path and cookie. */
        const stale = () => {
          if (!reg.knows(heirInode)) reg.discover();
          Object.assign(reg.entry(heirInode)!, {
            path: `/run/netns/${dead.name}`,
            name: dead.name,
            cookie: deadCookie,
          });
        };
        if (!real) {
          // No reuse produced: the dead namespace's override names the heir's inode.
          const j = Journal.open(state, { netnsCookie: () => deadCookie });
          j.markOverride(override(heirKey));
          j.close();
        }
        stale();
        reg.observe(1n, 0); // a look through the named directories, just now

        // Looked for again at once (a name leads to it): the heir's own cookie.
        assert.equal(verified(heirKey), heirCookie, "the stale path is looked for again at once");
        const j = Journal.open(state, { netnsCookie: verified });
        try {
          assert.equal(j.isOverridden(heirKey, RMEM), false, "the dead one's override: tuned");

          // Stale again, and its one look within the gap is used: unknown, never the dead cookie.
          stale();
          assert.equal(verified(heirKey), undefined);
          assert.equal(j.isOverridden(heirKey, RMEM), true, "held while it cannot be told");
          const before = heir.sysctl(RMEM);
          assert.throws(
            () => liveSysctls().write(RMEM, heirKey, [before[0], before[1], before[2] + 4096]),
            NetnsGoneError,
          );
          assert.deepEqual(heir.sysctl(RMEM), before, "nothing written into it");
          assert.throws(
            () => j.recordOriginal(heirKey, RMEM, "tcp_buffer", before, before),
            NetnsGoneError,
          );
          assert.deepEqual(j.changedEntries(), [], "no entry with the dead cookie");
          j.markOverride(override(heirKey)); // the administrator writes in the heir now
          const heirs = () => j.overrides().filter((o) => o.netns === heirKey);
          assert.deepEqual(heirs().map((o) => o.netnsCookie), [String(deadCookie)], "it waits");
          assert.equal(j.placePendingOverrides(), 0, "still unknown");

          reg.discover(); // the rescan: the heir's path is found (the dead cookie still held)
          assert.equal(j.placePendingOverrides(), 1);
          assert.deepEqual(
            heirs().map((o) => o.netnsCookie),
            [String(heirCookie)],
            "recorded with the heir's cookie (in the dead one's place: one per sysctl and tuner)",
          );
          assert.equal(j.isOverridden(heirKey, RMEM), true, "the heir's own override holds");
        } finally {
          j.close();
        }
      } finally {
        const fresh = new NetnsRegistry({ ownInum: ownNetnsInum() });
        fresh.discover();
        useNetnsRegistry(fresh);
      }
    }),
});

Deno.test({
  name:
    "the daemon's exit rollback restores a namespace it enters; one no path reaches now is kept for later, not forgotten",
  ignore: !IS_ROOT,
  // Every sysctl touched is inside the sandbox's namespaces: deleting them restores the rest.
  fn: () =>
    withSandbox("nsxr-ctl", (sb) => {
      const { state } = sb;
      // The daemon's registry between two scans (see the test above): a stale path, its one look
      // again within the gap used, leads nowhere.
      const at = performance.now();
      const reg = new NetnsRegistry({ ownInum: ownNetnsInum(), now: () => at });
      useNetnsRegistry(reg);
      const verified = (key: string) => netnsCookieOf(key, { verify: true });
      // As the daemon's: the files a checked visit opens stay open for the writes.
      const files = new SysctlFiles({ cookieNow: heldNetnsCookie, max: 64 });
      try {
        const near = sb.netns("nsxr-near"), far = sb.netns("nsxr-far");
        const dead = sb.netns("nsxr-dead");
        reg.discover();
        const io = liveSysctls(undefined, files);
        const journal = Journal.open(state, {
          netnsCookie: verified,
          entryNetnsCookie: (key) => netnsCookieOf(key),
        });
        const originals = new Map<string, number[]>();
        const keyOf = (ns: TestNetns) => `ns:${inodeOf(ns)}`;
        for (const ns of [near, far]) {
          const before = ns.sysctl(RMEM);
          const to = [before[0], before[1], before[2] + 4096];
          journal.recordOriginal(keyOf(ns), RMEM, "tcp_buffer", before, to);
          io.write(RMEM, keyOf(ns), to);
          journal.recordWritten(keyOf(ns), RMEM, to);
          originals.set(ns.name, before);
        }
        const tunedFar = far.sysctl(RMEM);
        const farCookie = verified(keyOf(far));
        if (farCookie === null || farCookie === undefined) {
          throw new Error("this kernel has no SO_NETNS_COOKIE; the test needs 5.14+");
        }
        assert.equal(journal.entry(keyOf(far), RMEM)?.netnsCookie, String(farCookie));
        const deadName = dead.name;
        dead.delete();
        const stale = () =>
          Object.assign(reg.entry(inodeOf(far))!, {
            path: `/run/netns/${deadName}`,
            name: deadName,
          });
        stale();
        reg.observe(1n, 0); // a look through the named directories, just now
        assert.equal(verified(keyOf(far)), farCookie, "looked for again at once");
        stale(); // and again: its one look within the gap is used

        const { log, lines } = recordingLog();
        const visits = visitEachOnce(journal, io);
        const r = rollbackFromJournal(journal, visits.io, log, () => null, visits.liveCookie);
        assert.deepEqual(r.restored.map((s) => s.netns), [keyOf(near)], lines.join("\n"));
        assert.deepEqual(near.sysctl(RMEM), originals.get(near.name));
        assert.deepEqual(r.skipped.map((s) => [s.netns, s.code]), [[keyOf(far), "unidentified"]]);
        assert.deepEqual(far.sysctl(RMEM), tunedFar, "not written");
        assert.deepEqual(
          journal.changedEntries().map((e) => e.netns),
          [keyOf(far)],
          "kept for a later rollback",
        );

        reg.discover(); // the rescan: its path is found
        const again = visitEachOnce(journal, io);
        const r2 = rollbackFromJournal(journal, again.io, log, () => null, again.liveCookie);
        assert.deepEqual(r2.restored.map((s) => s.netns), [keyOf(far)]);
        assert.deepEqual(far.sysctl(RMEM), originals.get(far.name));
        assert.deepEqual(journal.changedEntries(), []);
        journal.close();
      } finally {
        files.closeAll();
        const fresh = new NetnsRegistry({ ownInum: ownNetnsInum() });
        fresh.discover();
        useNetnsRegistry(fresh);
      }
    }),
});
