/** Which control socket a daemon's flags select. */
import assert from "node:assert/strict";
import { controlSocketPath } from "../../src/cli/run.ts";

Deno.test("control socket: default path, explicit path, none, and one per separate state dir", () => {
  assert.equal(controlSocketPath({}), "/run/bpfpilot/control.sock");
  assert.equal(controlSocketPath({ stateDir: "/var/lib/bpfpilot/" }), "/run/bpfpilot/control.sock");
  assert.equal(controlSocketPath({ stateDir: "/tmp/st" }), "/tmp/st/control.sock");
  assert.equal(
    controlSocketPath({ stateDir: "/tmp/st", controlSocket: "/run/x.sock" }),
    "/run/x.sock",
  );
  assert.equal(controlSocketPath({ controlSocket: false }), null);
});
