/**
 * The daemon's command line as existing bpftune units and scripts use it: clustered short flags
 * with no subcommand, plugin-style -a names, -S, JSON log lines, and clear usage errors.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { LAUNCHER } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";

Deno.test({
  name: "bpfpilot -dsR -a tcp_buffer_tuner.so runs the daemon like bpftune -dsR",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("flags", async ({ ns, cg, state, spawn }) => {
      const d = spawn([
        "-dsR",
        "-a",
        "tcp_buffer_tuner.so",
        "--state-dir",
        state,
        "--netns",
        ns.name,
        "-c",
        cg.path,
      ]);
      await d.waitFor(/bpfpilot started \(2 tuners/);
      assert.ok(d.matching(/^bpfpilot: /).length > 0, "-s: stderr with the bpfpilot: prefix");
      assert.ok(d.lines.some((l) => /libbpf|tuner=/.test(l)), "-d: debug lines");
      assert.equal(await d.stop("SIGINT"), 0, "SIGINT exits 0 too");
      assert.ok(d.matching(/# Events: tuner 'tcp_buffer'/).length === 1, "summary on exit");
    }),
});

Deno.test({
  name: "--log-format json: one JSON object per line with level, msg and fields",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("json", async ({ start }) => {
      const d = start(["--log-format", "json"]);
      await d.waitFor(/bpfpilot started/);
      assert.equal(await d.stop(), 0);
      const records = d.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      assert.ok(records.length >= 3);
      for (const r of records) {
        assert.equal(typeof r.ts, "string");
        assert.ok(["error", "warning", "notice", "info", "debug"].includes(r.level));
        assert.equal(typeof r.msg, "string");
      }
      assert.ok(records.some((r) => r.tuner === "tcp_buffer" && Array.isArray(r.hooks)));
    }),
});

Deno.test("usage errors exit 2 with a clear message; -S prints the support report", () => {
  const bad = spawnSync(LAUNCHER, ["run", "-r", "9"], { encoding: "utf8" });
  if (IS_ROOT) {
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /learning rate/i);
  }
  const unknown = spawnSync(LAUNCHER, [
    "run",
    "-s",
    "-a",
    "nosuch",
    "--state-dir",
    "/nonexistent/x",
  ], {
    encoding: "utf8",
  });
  assert.notEqual(unknown.status, 0);
  assert.doesNotMatch(unknown.stderr, /^\s+at /m);
  if (IS_ROOT) {
    const s = spawnSync(LAUNCHER, ["-S"], { encoding: "utf8" });
    assert.equal(s.status, 0);
    assert.match(s.stdout, /^bpfpilot works (fully|in legacy mode)\n/);
  }
  const help = spawnSync(LAUNCHER, ["run", "--help"], { encoding: "utf8" });
  assert.match(help.stdout, /Exit status: 0 stopped by a signal/);
  assert.match(help.stdout, /BPFPILOT_FAULT_INJECT/);
});
