/**
 * The kernel keeps what a settled tcp_rmem max would not act on (tcp_buffer.bpf.c emit_buffer,
 * event_mutes.ts), in the test's own namespace: short loopback flows grow its tcp_rmem max from
 * 1 MiB, a quiet spell trims it back to that floor (the need on loopback is tens of KB), and the
 * same flows again reach userspace once at most while their hits are counted as muted; the
 * daemon's rate-limit map holds the need userspace would act on (growthNeed). An admin write of
 * the max unmutes the key: the next flows are heard again. The namespace goes with its sysctls.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import { mapIdsOf, ROOT } from "../support/daemon.ts";
import { requestControl } from "../../src/daemon/control/client.ts";
import { findSamples, parseOpenMetrics } from "../support/openmetrics.ts";
import { growthNeed } from "../../src/tuners/tcp_buffer_rules.ts";

const RMEM = "net.ipv4.tcp_rmem";
const START = [4096, 131072, 1048576];
const DENO = join(ROOT, "node_modules/.bin/deno");
const TRAFFIC = join(ROOT, "test/support/tcp_traffic.ts");
const PORT = 5311;
/** The receive side's rate-limit kind at a max (tcp_buffer.bpf.c rl_kind_of). */
const RCV_KIND = 1 | ((START[2] >> 10) << 8);

async function mutedHits(sock: string): Promise<number> {
  const r = await requestControl({ verb: "metrics" }, { socketPath: sock });
  assert.ok(r.ok, JSON.stringify(r));
  const samples = findSamples(parseOpenMetrics(r.data as string), "bpfpilot_events_muted_total", {
    tuner: "tcp_buffer",
  });
  assert.equal(samples.length, 1, JSON.stringify(samples));
  return samples[0].value;
}

interface RlEntry {
  key: { netns: number; kind: number };
  value: { mute_until_ns: number; mute_need: number };
}

/** The daemon's rate-limiter entry for the namespace's receive side at START's max, if any. */
function rcvEntry(pid: number, inode: number): RlEntry["value"] | null {
  for (const id of mapIdsOf(pid)) {
    const show = (verb: string) =>
      execFileSync("bpftool", ["map", verb, "id", `${id}`, "--json"], { encoding: "utf8" });
    if (JSON.parse(show("show")).name !== "bpfp_ratelimit") continue;
    const out = show("dump");
    const dump = JSON.parse(out) as { formatted?: RlEntry }[];
    const entry = dump.map((e) => e.formatted).find((f) =>
      f?.key?.netns === inode && f.key.kind === RCV_KIND && f.value?.mute_need !== undefined
    );
    if (entry) return entry.value;
  }
  return null;
}

Deno.test({
  name: "a settled tcp_rmem max: its need stays in the kernel until the state changes",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("needmute", async (sb) => {
      sb.ns.setSysctl(RMEM, START);
      const inode = Deno.statSync(`/run/netns/${sb.ns.name}`).ino!;
      const d = sb.start(["--debug", "-a", "tcp_buffer"]);
      await d.waitFor(/bpfpilot started/, 60_000);
      const sock = `${sb.state}/control.sock`;
      const sink = new Deno.Command("ip", {
        args: ["netns", "exec", sb.ns.name, DENO, "run", "-A", TRAFFIC, "sink", `${PORT}`],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const flows = () =>
        sb.cg.run(
          `ip netns exec ${sb.ns.name} ${DENO} run -A ${TRAFFIC} send 127.0.0.1:${PORT} 300 ` +
            `${256 * 1024}`,
        );
      const rcvEvents = () => d.matching(/net\.ipv4\.tcp_rmem in .* near max/);
      try {
        assert.ok(
          await waitFor(() => sb.ns.exec(["ss", "-ltn"]).includes(`:${PORT}`), 15_000),
          "the sink listens",
        );
        // Growth, then a quiet spell: the max comes back to its floor, the need settled.
        flows();
        await d.waitFor(/Due to need to increase .* change net\.ipv4\.tcp_rmem/);
        const trim = await d.waitFor(
          /Due to steady traffic needing about (\d+) bytes .* change net\.ipv4\.tcp_rmem/,
          30_000,
        );
        const settled = Number(/needing about (\d+) bytes/.exec(trim)![1]);
        assert.deepEqual(sb.ns.sysctl(RMEM), START, "trimmed back to its floor");

        // The same flows: one event sets the threshold, the kernel keeps the rest.
        const before = { events: rcvEvents().length, muted: await mutedHits(sock) };
        // 3 s of them: unmuted, the rate limiter would let through two events a second.
        for (const end = Date.now() + 3000; Date.now() < end;) flows();
        await new Promise((r) => setTimeout(r, 1500)); // events still on their way are counted
        const after = { events: rcvEvents().length, muted: await mutedHits(sock) };
        const heard = rcvEvents().slice(before.events);
        console.log(`settled need ${settled}; ${JSON.stringify({ before, after })}`);
        assert.ok(heard.length <= 1, `receive events at the settled max:\n${heard.join("\n")}`);
        assert.ok(after.muted - before.muted > 100, `hits muted: ${JSON.stringify(after)}`);
        assert.deepEqual(sb.ns.sysctl(RMEM), START, "the same need grew nothing");
        const need = growthNeed(START[2], settled);
        assert.equal(rcvEntry(d.pid, inode)?.mute_need, need, "muted up to growthNeed");

        // The administrator writes the max (in the watched cgroup): news, whatever its value.
        sb.cg.run(`ip netns exec ${sb.ns.name} sysctl -qw ${RMEM}="${START.join(" ")}"`);
        await d.waitFor(/modified sysctl 'net\.ipv4\.tcp_rmem'/);
        assert.equal(rcvEntry(d.pid, inode)?.mute_need ?? 0, 0, "unmuted by the admin's write");
        const mark = rcvEvents().length;
        flows();
        assert.ok(
          await waitFor(() => rcvEvents().length > mark, 5000),
          "heard again after the admin's write",
        );
        assert.equal(await d.stop(), 0, "clean exit");
      } finally {
        try {
          sink.kill("SIGKILL");
        } catch {
          // gone
        }
        await sink.status;
      }
    }),
});
