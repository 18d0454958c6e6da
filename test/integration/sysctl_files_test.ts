/**
 * Kept /proc/sys files (src/kernel/sysctl_files.ts) on the real kernel, as on a kernel without
 * netns cookies (5.10: no SO_NETNS_COOKIE, cookieNow is null for every namespace), where nothing
 * but the kernel tells a deleted namespace's file from a new namespace with the same inode number
 * (the daemon's key): its reads and writes must fail (ENOENT) once the namespace is gone, and the
 * file is then dropped. The same check on 5.10, 6.1, 6.12 and 7.3 under QEMU:
 * `scripts/kernel-matrix --script scripts/km/guest-stale-sysctl`.
 */
import assert from "node:assert/strict";
import { IS_ROOT } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import { SysctlFiles } from "../../src/kernel/sysctl_files.ts";
import { inNetns, netnsInumOf, netnsKey, netnsRegistry } from "../../src/kernel/netns.ts";
import { readSysctlText } from "../../src/kernel/sysctl.ts";

const RMEM = "net.ipv4.tcp_rmem", WMEM = "net.ipv4.tcp_wmem";

function words(text: string | null): string {
  return (text ?? "").trim().split(/\s+/).join(" ");
}

Deno.test({
  name: "SysctlFiles without cookies: a deleted namespace's kept files fail and are dropped, " +
    "and never reach a new namespace with its inode",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("skf", async (sb) => {
      const files = new SysctlFiles({ cookieNow: () => null });
      const ns = sb.ns;
      const inum = netnsInumOf(`/run/netns/${ns.name}`);
      const key = netnsKey(inum);
      try {
        netnsRegistry().discover();
        inNetns(key, () => {
          assert.ok(files.keepHere(key, RMEM) && files.keepHere(key, WMEM));
        });
        const wmemDefault = words(files.read(key, WMEM));
        const hostRmem = words(readSysctlText(RMEM));
        // Through the kept file from here: the namespace's value, not the host's.
        const mark = "4096 131072 1234567";
        assert.ok(files.write(key, RMEM, `${mark}\n`));
        assert.equal(ns.sysctl(RMEM).join(" "), mark);
        assert.equal(words(readSysctlText(RMEM)), hostRmem);

        ns.delete();
        // The kernel tears a namespace down asynchronously (~50 ms here): until then the file
        // still reads the dying namespace. Then the read fails and drops it.
        const t0 = Date.now();
        while (files.read(key, RMEM) !== null) {
          assert.ok(Date.now() - t0 < 10_000, "the kept file still reads 10 s after the delete");
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(files.size, 1, "the failed file is dropped, the other kept");

        // A new namespace now usually takes the freed inode: the same key for the daemon.
        const fresh = sb.netns("skf-new");
        const sameInode = netnsInumOf(`/run/netns/${fresh.name}`) === inum;
        console.log(`new namespace ${sameInode ? "reuses" : "does not reuse"} the inode ${inum}`);
        assert.equal(files.write(key, WMEM, "4096 16384 7654321\n"), false);
        assert.equal(files.read(key, WMEM), null);
        assert.equal(files.size, 0);
        assert.equal(fresh.sysctl(WMEM).join(" "), wmemDefault, "the new namespace is untouched");
      } finally {
        files.closeAll();
      }
    }),
});
