/** `-D` plumbing: the child's command line and the readiness line it reports on. */
import assert from "node:assert/strict";
import { withoutDaemonFlag } from "../../src/cli/background.ts";
import { parseReadiness } from "../../src/cli/readiness.ts";
import { formatUptime } from "../../src/cli/query.ts";

Deno.test("the background child gets the command line without -D, clusters included", () => {
  assert.deepEqual(withoutDaemonFlag(["-D", "-s"]), ["-s"]);
  assert.deepEqual(withoutDaemonFlag(["-dDs", "--daemon", "run"]), ["-ds", "run"]);
  assert.deepEqual(withoutDaemonFlag(["-D", "--state-dir", "/x/-D"]), ["--state-dir", "/x/-D"]);
  assert.deepEqual(withoutDaemonFlag(["-Ds"]), ["-s"]);
});

Deno.test("readiness lines: ready, failed, and anything else is no report", () => {
  assert.deepEqual(parseReadiness('{"ready":true,"pid":42,"pidFile":"/run/x.pid"}\n'), {
    ready: true,
    pid: 42,
    pidFile: "/run/x.pid",
  });
  assert.deepEqual(parseReadiness('{"ready":false,"error":"boom"}\n'), {
    ready: false,
    error: "boom",
    exitCode: 1,
  });
  assert.equal(parseReadiness(""), null);
  assert.equal(parseReadiness("garbage\n"), null);
  assert.equal(parseReadiness('{"ready":true}'), null);
});

Deno.test("uptime reads as days, hours, minutes, seconds", () => {
  assert.equal(formatUptime(5), "5s");
  assert.equal(formatUptime(3725), "1h 2m 5s");
  assert.equal(formatUptime(90061), "1d 1h 1m 1s");
});
