/**
 * route_table on a kernel that no longer enforces net.ipv6.route.max_size (6.3 and later, such
 * as this project's 6.18): unavailable with its plain reason in `support` (text and JSON), in the
 * start-up log and in `query tuners`, while the daemon runs its other tuners. The kernel matrix
 * covers 5.10 and 6.1, where the check was removed by a stable backport (told by BTF) and the
 * guest's dst cache is driven past max_size to confirm it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { kernelVersion } from "../../src/kernel/memory.ts";
import { LAUNCHER } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";

const k = kernelVersion();
const NOT_ENFORCED = k.major > 6 || (k.major === 6 && k.minor >= 3);
const REASON =
  /net\.ipv6\.route\.max_size is not enforced by this kernel \(Linux 6\.3 and later no longer limit the IPv6 destination cache by it\)/;

function cli(args: string[]) {
  return spawnSync(LAUNCHER, args, { encoding: "utf8", timeout: 60_000 });
}

Deno.test({
  name: "route_table: support says why it is unavailable here, and probes none of its hooks",
  ignore: !IS_ROOT || !NOT_ENFORCED,
  fn() {
    const json = cli(["support", "--json"]);
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    const u = report.unavailable.find((x: { tuner: string }) => x.tuner === "route_table");
    assert.match(u?.reason ?? "", REASON);
    assert.deepEqual(report.hooks.filter((h: { tuner: string }) => h.tuner === "route_table"), []);
    assert.equal(report.level, "full", "a tuner with nothing to do does not degrade the level");
    const text = cli(["support"]);
    assert.match(text.stdout, /\nTuners unavailable on this kernel:\n {2}route_table: net\.ipv6/);
  },
});

Deno.test({
  name: "route_table: the daemon logs the reason, runs the rest, and query tuners repeats it",
  ignore: !IS_ROOT || !NOT_ENFORCED,
  async fn() {
    await withSandbox("rt", async ({ state, start }) => {
      const sock = `${state}/ctl.sock`;
      const d = start(["--control-socket", sock]);
      await d.waitFor(/bpfpilot started/);
      const line = d.matching(/tuner route_table is unavailable: /);
      assert.equal(line.length, 1, d.lines.join("\n"));
      assert.match(line[0], REASON);
      assert.deepEqual(d.matching(/failed to load|load failed|could not load/i), []);
      const q = cli(["query", "tuners", "--control-socket", sock]);
      assert.equal(q.status, 0, q.stderr);
      assert.match(q.stdout, /\nroute_table\s+unavailable\s+.*not enforced by this kernel/);
      assert.match(q.stdout, /\nneigh_table\s+active\s+hooks: neigh_create/);
      assert.equal(await d.stop("SIGTERM"), 0);
    });
  },
});

Deno.test({
  name: "route_table alone (--allow route_table): the daemon still starts and says why",
  ignore: !IS_ROOT || !NOT_ENFORCED,
  async fn() {
    await withSandbox("rta", async ({ start }) => {
      const d = start(["--allow", "route_table_tuner.so"]);
      await d.waitFor(/bpfpilot started/);
      assert.match(d.matching(/tuner route_table is unavailable/)[0] ?? "", REASON);
      assert.equal(await d.stop("SIGTERM"), 0);
    });
  },
});

Deno.test({
  name:
    "route_table: BPFPILOT_FAULT_INJECT=route_table:available tries its hooks anyway (none here)",
  ignore: !IS_ROOT || !NOT_ENFORCED,
  async fn() {
    await withSandbox("rtf", async ({ start }) => {
      const d = start(["--allow", "route_table"], {
        BPFPILOT_FAULT_INJECT: "route_table:available",
      });
      // Named with -a and unable to attach here (fentry refused, no kprobes): a refusal.
      assert.equal(await d.exited(), 1);
      const forced = d.matching(/tuner route_table loaded although it has nothing to do here/);
      assert.equal(forced.length, 1, d.lines.join("\n"));
      assert.match(forced[0], REASON);
      assert.match(forced[0], /BPFPILOT_FAULT_INJECT=route_table:available$/);
      const u = d.matching(/tuner route_table is unavailable: hook dst_gc cannot attach/);
      assert.equal(u.length, 1, d.lines.join("\n"));
      assert.match(u[0], /fentry ip6_dst_gc: .*kprobe fib6_run_gc: /);
      assert.equal(d.matching(/refusing to start without tuner route_table/).length, 1);
    });
  },
});
