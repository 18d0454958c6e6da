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
import { LAUNCHER, tempStateDir, TestNetns } from "../support/daemon.ts";
import { Journal } from "../../src/daemon/journal.ts";
import { netnsCookieOf } from "../../src/kernel/netns.ts";

const RMEM = "net.ipv4.tcp_rmem";
const ATTEMPTS = 200;

const inodeOf = (ns: TestNetns) => BigInt(statSync(`/run/netns/${ns.name}`).ino);

Deno.test({
  name: "rollback drops a dead namespace's record and never writes into the one with its inode",
  ignore: !IS_ROOT,
  async fn() {
    const mine: TestNetns[] = [];
    const state = tempStateDir();
    try {
      const dead = TestNetns.create("nsck-dead");
      const control = TestNetns.create("nsck-ctl");
      mine.push(dead, control);
      const deadKey = `ns:${inodeOf(dead)}`;
      const controlKey = `ns:${inodeOf(control)}`;
      const live = control.sysctl(RMEM);
      const original = [live[0], live[1], live[2] - 4096];
      const deadCookie = netnsCookieOf(deadKey);
      if (deadCookie === null) {
        throw new Error("this kernel has no SO_NETNS_COOKIE; the test needs 5.14+");
      }
      const journal = Journal.open(state.dir, { netnsCookie: netnsCookieOf });
      for (const key of [deadKey, controlKey]) {
        journal.recordOriginal(key, RMEM, "tcp_buffer", original, live);
        journal.recordWritten(key, RMEM, live);
      }
      journal.close();

      dead.delete();
      mine.splice(mine.indexOf(dead), 1);
      let heir: TestNetns | null = null;
      for (let i = 0; i < ATTEMPTS && !heir; i++) {
        await new Promise((r) => setTimeout(r, 20)); // namespaces are freed by a workqueue
        const ns = TestNetns.create(`nsck-r${i}`);
        mine.push(ns);
        if (`ns:${inodeOf(ns)}` === deadKey) heir = ns;
      }
      let heirKey = deadKey;
      if (!heir) {
        // No reuse produced: name a live namespace's inode with the dead one's cookie.
        heir = mine[mine.length - 1];
        heirKey = `ns:${inodeOf(heir)}`;
        const j = Journal.open(state.dir, { netnsCookie: () => deadCookie });
        j.forget(deadKey, RMEM);
        j.recordOriginal(heirKey, RMEM, "tcp_buffer", original, live);
        j.recordWritten(heirKey, RMEM, live);
        j.close();
      }
      console.log(`inode reused for real: ${heirKey === deadKey} (${mine.length - 1} created)`);
      const saved = JSON.parse(Deno.readTextFileSync(`${state.dir}/state.json`));
      assert.equal(
        saved.entries.find((e: { netns: string }) => e.netns === heirKey)?.netnsCookie,
        String(deadCookie),
      );
      assert.notEqual(netnsCookieOf(controlKey), null);
      assert.deepEqual(heir.sysctl(RMEM), live, "the new namespace is at the journal's last write");

      const out = new Deno.Command(LAUNCHER, {
        args: ["rollback", "--state-dir", state.dir],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, text);
      assert.deepEqual(heir.sysctl(RMEM), live, `nothing written into the new namespace\n${text}`);
      assert.deepEqual(control.sysctl(RMEM), original, `the live one is restored\n${text}`);
      assert.match(
        text,
        new RegExp(
          `netns inode ${heirKey.slice(3)} was reused by a new namespace; dropped the record ` +
            `for the old one`,
        ),
      );
      const after = Journal.open(state.dir, { create: false });
      assert.deepEqual(after.changedEntries(), [], "the dead namespace's record is dropped");
      after.close();
    } finally {
      // Every sysctl touched was inside these namespaces; deleting them restores the rest.
      for (const ns of mine) ns.delete();
      state.remove();
    }
  },
});
