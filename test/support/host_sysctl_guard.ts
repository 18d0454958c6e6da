/**
 * Preloaded by scripts/test into every test file (`deno test --preload`): around each test that
 * can touch the host (root, not a unit test), snapshots the host's value of every sysctl a tuner
 * can change; a test that leaves one changed fails, naming the sysctl, and the value is put back
 * so the next test starts from the host's own. Deno names the test and its file.
 */
import { IS_ROOT } from "./kernel.ts";
import {
  changedSince,
  describeChanges,
  type HostSysctlSnapshot,
  putBack,
  snapshotHostSysctls,
} from "./host_sysctls.ts";

const UNIT = /\/test\/unit\//.test(Deno.mainModule);

if (IS_ROOT && !UNIT) {
  let before: HostSysctlSnapshot | null = null;
  Deno.test.beforeEach(() => {
    before = snapshotHostSysctls();
  });
  Deno.test.afterEach(() => {
    if (!before) return;
    const changes = changedSince(before);
    before = null;
    if (!changes.length) return;
    const unrestored = putBack(changes);
    throw new Error(
      `this test left host sysctls changed: ${describeChanges(changes)}. ` +
        (unrestored.length
          ? `Could not put back: ${unrestored.join("; ")}`
          : "They are put back now; restore them in the test (withHostSysctls, or -R for a " +
            "daemon whose tuner changes host-wide sysctls)."),
    );
  });
}
