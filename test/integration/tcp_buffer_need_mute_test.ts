/**
 * The kernel keeps what tcp_buffer would not act on (tcp_buffer.bpf.c emit_buffer,
 * event_mutes.ts), in the test's own namespace:
 *
 * 1. Short loopback flows at a 512 KiB tcp_rmem max need up to ~130 KB a round trip, under half
 *    of it (WINDOW_LIMITED_SHARE): nothing grows, one event at most sets the threshold, the
 *    kernel keeps the rest (muted hits counted), and the daemon's rate-limit map holds the need
 *    userspace would act on (windowLimitedNeed, 262,144).
 * 2. A transfer over a ~50 ms path from a second namespace (as the bench's WAN path, without
 *    netem: the data direction limited to 100 Mbit/s by tbf, the ACK direction's 10 Mbit/s tbf
 *    queue kept full by a UDP stream) needs the whole max a round trip: heard, grown, and the
 *    growth unmutes the key.
 * 3. Once the transfer is over the settle trims the max near that need; the loopback flows again
 *    stay in the kernel, now muted up to growthNeed of the trimmed max.
 *
 * The margins. That path's bandwidth-delay product (100 Mbit/s x 51 ms, 640 KB of data) is more
 * than the window a 512 KiB buffer offers (405,504 bytes at the kernel's scaling_ratio 198/256),
 * so the transfer is window-limited: each round trip brings that window, which as buffer is the
 * whole max (505-541 KB measured per round trip, the receiver's srtt over the period), about 2x
 * the mute of step 1. Slow start brings a grow hit a round trip, measuring 0.1, 0.15, 0.3, 0.6x
 * the max, then ~1x at the first full window (~0.65 s in); a flow at a steady rate beats its
 * record, and so reaches the hook, only seconds apart. Each transfer is a fresh slow start, up to
 * ATTEMPTS, stopped once the max grows; one that is not heard must show that the kernel measured
 * no more than the mute at every grow hit seen (its marks, polled), and the report prints them.
 * The namespaces go with their sysctls.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import {
  type DaemonProcess,
  mapIdsOf,
  programIdsOf,
  ROOT,
  type TestNetns,
} from "../support/daemon.ts";
import { requestControl } from "../../src/daemon/control/client.ts";
import { findSamples, parseOpenMetrics } from "../support/openmetrics.ts";
import { growthNeed, windowLimitedNeed } from "../../src/tuners/tcp_buffer_rules.ts";

const RMEM = "net.ipv4.tcp_rmem";
const START = [4096, 131072, 524288];
const DENO = join(ROOT, "node_modules/.bin/deno");
const TRAFFIC = join(ROOT, "test/support/tcp_traffic.ts");
const PORT = 5311, IPERF_PORT = 5313;
/** The receive side's rate-limit kind at a max (tcp_buffer.bpf.c rl_kind_of). */
const rcvKind = (max: number) => 1 | ((max >> 10) << 8);

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

/** The daemon's rate-limiter entry for the namespace's receive side at `max`, if any. */
function rcvEntry(pid: number, inode: number, max = START[2]): RlEntry["value"] | null {
  for (const id of mapIdsOf(pid)) {
    const show = (verb: string) =>
      execFileSync("bpftool", ["map", verb, "id", `${id}`, "--json"], { encoding: "utf8" });
    if (JSON.parse(show("show")).name !== "bpfp_ratelimit") continue;
    const dump = JSON.parse(show("dump")) as { formatted?: RlEntry }[];
    const entry = dump.map((e) => e.formatted).find((f) =>
      f?.key?.netns === inode && f.key.kind === rcvKind(max) && f.value?.mute_need !== undefined
    );
    if (entry) return entry.value;
  }
  return null;
}

/** A process in namespace `ns`, killed and reaped by close(). */
function inNetns(ns: TestNetns, args: string[]): { close(): Promise<void> } {
  const p = new Deno.Command("ip", {
    args: ["netns", "exec", ns.name, ...args],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    async close() {
      try {
        p.kill("SIGKILL");
      } catch {
        // exited
      }
      await p.status;
    },
  };
}

const listening = (ns: TestNetns, port: number) => () =>
  ns.exec(["ss", "-Hltn", `sport = :${port}`]).includes(`:${port}`);

/** Long-path transfers tried before the test gives up, and each one's length. */
const ATTEMPTS = 3, TRANSFER_S = 8;

/** The id of the daemon's tb_rcv_marks map (tcp_buffer.bpf.c rcv_arrived_need's measures). */
function marksMapOf(pid: number): number {
  const json = (args: string[]) =>
    JSON.parse(execFileSync("bpftool", [...args, "--json"], { encoding: "utf8" }));
  for (const prog of programIdsOf(pid)) {
    for (const id of json(["prog", "show", "id", `${prog}`]).map_ids ?? []) {
      if (json(["map", "show", "id", `${id}`]).name === "tb_rcv_marks") return id;
    }
  }
  throw new Error("no tb_rcv_marks map");
}

interface Mark {
  key: number;
  value: { bytes: number; at: number; used: number; ports: number };
}

/** The marks of the iperf3 server's sockets (local port in skc_portpair's high half). */
async function serverMarks(id: number): Promise<Mark[]> {
  const out = await new Deno.Command("bpftool", {
    args: ["map", "dump", "id", `${id}`, "--json"],
    stdout: "piped",
  }).output();
  return (JSON.parse(new TextDecoder().decode(out.stdout)) as { formatted?: Mark }[])
    .map((e) => e.formatted)
    .filter((m): m is Mark => m?.value?.ports !== undefined && m.value.ports >>> 16 === IPERF_PORT);
}

interface Attempt {
  grown: boolean;
  /** The receive events it brought. */
  heard: string[];
  /** The largest measure the kernel took at its grow hits, as a multiple of the mute. */
  peak: number;
  summary: string;
}

/**
 * One transfer over the long path, stopped once the max grows (or TRANSFER_S and 2 s for its
 * events): the kernel's measures at its receive socket's grow hits (a mark that moved), polled,
 * as multiples of the mute `need`. The kernel is heard only at those hits, which a
 * window-limited flow brings seconds apart once slow start is over (the header says why).
 */
async function transfer(
  d: DaemonProcess,
  path: { far: string; address: string },
  marks: number,
  need: number,
) {
  const mark = d.lines.length;
  const before = new Set((await serverMarks(marks)).map((m) => `${m.key}@${m.value.at}`));
  const iperf = ["iperf3", "-c", path.address, "-p", `${IPERF_PORT}`, "-t", `${TRANSFER_S}`];
  const client = new Deno.Command("ip", {
    args: ["netns", "exec", path.far, ...iperf],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = client.output();
  let endedAt = 0;
  output.then(() => endedAt = Date.now());
  const start = Date.now();
  const hits = new Map<string, string>();
  let peak = 0;
  const grew = /Due to need to increase .* change net\.ipv4\.tcp_rmem/;
  const grown = () => d.lines.slice(mark).some((l) => grew.test(l));
  while (!grown() && !(endedAt && Date.now() - endedAt > 2000)) {
    for (const m of await serverMarks(marks)) {
      const at = `${m.key}@${m.value.at}`;
      if (before.has(at) || hits.has(at) || !m.value.used) continue;
      peak = Math.max(peak, m.value.used / need);
      hits.set(at, `${Date.now() - start}ms ${(m.value.used / need).toFixed(2)}`);
    }
    await new Promise((r) => setTimeout(r, 40));
  }
  try {
    client.kill("SIGKILL");
  } catch {
    // ended
  }
  const out = await output;
  const sender = /.*sender$/m.exec(new TextDecoder().decode(out.stdout))?.[0] ??
    new TextDecoder().decode(out.stderr); // the transfer's total, or why there was none
  const heard = d.lines.slice(mark).filter((l) => /net\.ipv4\.tcp_rmem in .* near max/.test(l));
  const summary = `${grown() ? "grown" : "not grown"} after ${Date.now() - start} ms; ` +
    `measures / mute at grow hits: ${[...hits.values()].join(", ") || "none"}` +
    `${sender ? `; iperf3: ${sender.replace(/\s+/g, " ").trim()}` : ""}` +
    heard.map((l) => {
      const n = Number(/delivery rate needs (\d+)/.exec(l)?.[1]);
      return `\nheard ${(n / need).toFixed(2)}x the mute: ${l}`;
    }).join("");
  return { grown: grown(), heard, peak, summary };
}

Deno.test({
  name: "tcp_rmem needs below what would grow it stay in the kernel, before and after a trim; " +
    "a bigger one is heard and grows the max",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("needmute", async (sb) => {
      sb.ns.setSysctl(RMEM, START);
      const inode = Deno.statSync(`/run/netns/${sb.ns.name}`).ino!;
      const procs = [inNetns(sb.ns, [DENO, "run", "-A", TRAFFIC, "sink", `${PORT}`])];
      try {
        const d = sb.start(["--debug", "-a", "tcp_buffer"]);
        await d.waitFor(/bpfpilot started/, 60_000);
        const sock = `${sb.state}/control.sock`;
        const flows = () =>
          sb.cg.run(
            `ip netns exec ${sb.ns.name} ${DENO} run -A ${TRAFFIC} send 127.0.0.1:${PORT} 300 ` +
              `${256 * 1024}`,
          );
        const rcvEvents = () => d.matching(/net\.ipv4\.tcp_rmem in .* near max/);
        const grew = /Due to need to increase .* change net\.ipv4\.tcp_rmem/;
        assert.ok(await waitFor(listening(sb.ns, PORT), 15_000), "the sink listens");

        // 3 s of loopback flows: one event sets the threshold, the kernel keeps the rest
        // (unmuted, the rate limiter would let through two events a second); nothing grows.
        const kept = async (max: number, need: number, what: string) => {
          const before = { events: rcvEvents().length, muted: await mutedHits(sock) };
          for (const end = Date.now() + 3000; Date.now() < end;) flows();
          await new Promise((r) => setTimeout(r, 1500)); // events still on their way are counted
          const after = { events: rcvEvents().length, muted: await mutedHits(sock) };
          const heard = rcvEvents().slice(before.events);
          console.log(`${what}: ${JSON.stringify({ before, after })}`);
          assert.ok(heard.length <= 1, `${what}: receive events:\n${heard.join("\n")}`);
          assert.ok(
            after.muted - before.muted > 100,
            `${what}: hits muted: ${JSON.stringify(after)}`,
          );
          assert.equal(sb.ns.sysctl(RMEM)[2], max, `${what}: nothing grew`);
          assert.deepEqual(d.matching(grew).length, grownSoFar, `${what}: no growth logged`);
          assert.equal(
            rcvEntry(d.pid, inode, max)?.mute_need,
            need,
            `${what}: muted up to ${need}`,
          );
        };
        let grownSoFar = 0;
        await kept(START[2], windowLimitedNeed(START[2]), "loopback at the 512 KiB max");

        // The long path needs the whole max per round trip: heard once its window is full, grown.
        // A fresh transfer while none is.
        const path = sb.ns.longPath(); // TestNetns.longPath: the ~50 ms path into sb.ns
        procs.push(inNetns(sb.ns, ["iperf3", "-s", "-p", `${IPERF_PORT}`]));
        assert.ok(await waitFor(listening(sb.ns, IPERF_PORT), 5000), "iperf3 listens");
        const marks = marksMapOf(d.pid);
        const need = windowLimitedNeed(START[2]);
        const attempts: Attempt[] = [];
        while (attempts.length < ATTEMPTS && !attempts.some((a) => a.heard.length)) {
          if (attempts.length) await new Promise((r) => setTimeout(r, 1000)); // the server resets
          attempts.push(await transfer(d, path, marks, need));
        }
        const report = attempts.map((a, i) => `transfer ${i + 1}: ${a.summary}`).join("\n");
        console.log(report);
        const grownBy = attempts.find((a) => a.grown);
        assert.ok(grownBy, `no growth over the long path (mute ${need}):\n${report}`);
        for (const a of attempts) {
          // Unheard, the kernel measured no more than the mute; heard, the need grew the max.
          if (!a.heard.length) assert.ok(a.peak <= 1, `a bigger need kept:\n${report}`);
          else assert.ok(a.grown, `heard without growth:\n${report}`);
        }
        const heardNeed = Number(/delivery rate needs (\d+)/.exec(grownBy.heard[0])?.[1]);
        assert.ok(heardNeed > need, `heard at ${heardNeed}, muted up to ${need}:\n${report}`);
        assert.ok(sb.ns.sysctl(RMEM)[2] > START[2], `${sb.ns.sysctl(RMEM)}`);
        assert.equal(rcvEntry(d.pid, inode)?.mute_need ?? 0, 0, "the growth unmuted the key");

        // Quiet: the settle trims the max near the path's need; the loopback flows stay kept,
        // up to growthNeed of the trimmed max.
        const trim = await d.waitFor(
          /Due to steady traffic needing about (\d+) bytes .* change net\.ipv4\.tcp_rmem/,
          30_000,
        );
        const settled = Number(/needing about (\d+) bytes/.exec(trim)![1]);
        const trimmed = sb.ns.sysctl(RMEM)[2];
        console.log(`trimmed to ${trimmed}, settled need ${settled}`);
        assert.ok(trimmed >= START[2], `trimmed no lower than the max before growth: ${trimmed}`);
        grownSoFar = d.matching(grew).length;
        await kept(trimmed, growthNeed(trimmed, settled), "loopback at the trimmed max");
        assert.equal(await d.stop(), 0, "clean exit");
      } finally {
        for (const p of procs) await p.close();
      }
    }),
});
