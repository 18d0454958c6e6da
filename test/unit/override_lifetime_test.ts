/** Overrides' lifetime: persistent keeps admin writes across restarts and says so at start;
 * session (bpftune's) forgets them, but keeps an explicit `disable`. */
import assert from "node:assert/strict";
import { Journal } from "../../src/daemon/journal.ts";
import { applyOverrideLifetime } from "../../src/daemon/override_lifetime.ts";
import { recordDisable } from "../../src/daemon/control_overrides.ts";

function logSink() {
  const lines: string[] = [];
  const put = (m: string) => lines.push(m);
  return {
    lines,
    log: { debugEnabled: true, error: put, warn: put, notice: put, info: put, debug: put },
  };
}

function withJournal(fn: (j: Journal, dir: string) => void) {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-overrides-" });
  try {
    const j = Journal.open(dir);
    j.markOverride({
      netns: "global",
      sysctl: "net.ipv4.tcp_rmem",
      tuner: "tcp_buffer",
      pid: 4242,
      comm: "sysctl",
    });
    recordDisable(j, "tcp_buffer", "net.ipv4.tcp_wmem");
    fn(j, dir);
    j.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("persistent: remembered overrides stay and each is named at start with the way out", () => {
  withJournal((j) => {
    const { lines, log } = logSink();
    applyOverrideLifetime(j, "persistent", log);
    assert.equal(j.overrides().length, 2);
    assert.equal(lines.length, 2);
    assert.match(
      lines[0],
      /^not tuning net\.ipv4\.tcp_rmem in global ns since \d{4}-.*: admin write by sysctl \(pid 4242\); 'bpfpilot enable net\.ipv4\.tcp_rmem' to resume$/,
    );
    assert.match(lines[1], /^not tuning net\.ipv4\.tcp_wmem .*switched off with 'disable'/);
  });
});

Deno.test("session: admin writes from an earlier run are forgotten, a disable is kept", () => {
  withJournal((j, dir) => {
    const { lines, log } = logSink();
    applyOverrideLifetime(j, "session", log);
    assert.deepEqual(j.overrides().map((o) => o.sysctl), ["net.ipv4.tcp_wmem"]);
    assert.match(lines[0], /forgot 1 admin override/);
    // Durable: a fresh reader of the state directory sees the same.
    const again = Journal.open(dir);
    assert.deepEqual(again.overrides().map((o) => o.sysctl), ["net.ipv4.tcp_wmem"]);
    again.close();
  });
});
