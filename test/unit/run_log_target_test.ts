/** Which log target a daemon's flags select: --log, and -s as bpftune's spelling of stderr. */
import assert from "node:assert/strict";
import { logTarget } from "../../src/cli/run.ts";

Deno.test("log target: auto by default, --log names it, -s is --log stderr and wins", () => {
  assert.equal(logTarget({}), "auto");
  assert.equal(logTarget({ log: "journal" }), "journal");
  assert.equal(logTarget({ log: "syslog" }), "syslog");
  assert.equal(logTarget({ stderr: true }), "stderr");
  // -s on the command line beats a `log = "journal"` in the configuration file.
  assert.equal(logTarget({ stderr: true, log: "journal" }), "stderr");
});
