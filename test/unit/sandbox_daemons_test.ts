/**
 * A daemon an integration test starts goes through withSandbox (sb.start, sb.spawn, sb.spawnVia),
 * which SIGKILLs it before putting back the host-wide tunables and removing the namespaces. One
 * started with DaemonProcess.start directly outlives its sandbox when an assertion fails before
 * the test's own stop, and may go on tuning the host. This fails when a test file does that.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "../support/daemon.ts";

const DIR = join(ROOT, "test/integration");
const DIRECT = /DaemonProcess\.start(Via)?\(/g;

/** The justified exceptions, each with why; its own try/finally kills its daemon by pid. */
const ALLOWED: Record<string, string> = {
  // Host-wide on purpose (no --netns: every namespace, the host's too), so in no sandbox.
  "netns_scale_test.ts": "host-wide daemon; SIGKILLed in its finally",
};

function directStarts(): Map<string, number> {
  const found = new Map<string, number>();
  for (const e of Deno.readDirSync(DIR)) {
    if (!e.isFile || !e.name.endsWith(".ts")) continue;
    const n = Deno.readTextFileSync(join(DIR, e.name)).match(DIRECT)?.length ?? 0;
    if (n) found.set(e.name, n);
  }
  return found;
}

Deno.test("integration tests start their daemons through withSandbox, not DaemonProcess", () => {
  const found = directStarts();
  const offenders = [...found.keys()].filter((f) => !(f in ALLOWED)).sort();
  assert.deepEqual(
    offenders,
    [],
    "start these daemons with sb.start / sb.spawn / sb.spawnVia (test/support/sandbox.ts), " +
      "or add the file to ALLOWED saying why",
  );
  // An exception that no longer starts a daemon directly leaves the list.
  const stale = Object.keys(ALLOWED).filter((f) => !found.has(f));
  assert.deepEqual(stale, [], "ALLOWED names files that no longer need it");
});

Deno.test("the check sees a direct start", () => {
  const src = `const d = DaemonProcess.start(args);\nDaemonProcess.startVia("sh", []);`;
  assert.equal(src.match(DIRECT)?.length, 2);
  assert.equal("sb.start(args); spawnVia(x, [])".match(DIRECT), null);
});
