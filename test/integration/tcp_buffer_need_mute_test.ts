/**
 * The kernel keeps what a settled tcp_rmem max would not act on (tcp_buffer.bpf.c emit_buffer,
 * event_mutes.ts), in the test's own namespace: short loopback flows grow its tcp_rmem max from
 * 512 KiB, a quiet spell trims it back to that floor (the need on loopback is tens of KB), and
 * the same flows again reach userspace once at most while their hits are counted as muted; the
 * daemon's rate-limit map holds the need userspace would act on (growthNeed, 437 KB). A longer
 * round trip then needs more than that: a transfer over a ~50 ms path from a second namespace
 * (as the bench's WAN path, without netem: the data direction limited to 100 Mbit/s by tbf, the
 * ACK direction's 10 Mbit/s tbf queue kept full by a UDP stream) is heard and grows the max, and
 * the growth unmutes the key. The namespaces go with their sysctls.
 *
 * The margin, and why it cannot be larger: that path's bandwidth-delay product (100 Mbit/s x
 * 51 ms, 640 KB of data) is more than the window a 512 KiB buffer offers (405,504 bytes at the
 * kernel's scaling_ratio 198/256), so the transfer is window-limited: each round trip brings that
 * window, which as buffer is the whole max (505-541 KB measured per round trip: the receiver's
 * srtt over the period that brought it, 0.96-1.04). No socket the max holds can show more than
 * the max, and the mute sits at FRESH_MARGIN / TRIM_HEADROOM = 1.25 / 1.5 of it, so 524,288 /
 * 436,906 = 1.2x is about the most any path (longer, faster) gives; the transfer shows
 * 1.16-1.24x. It flaked once when the kernel's measure averaged slow start's last round trip with
 * the first at the max (tcp_buffer.bpf.c rcv_arrived_need, fixed there), not for want of margin.
 *
 * Why one transfer may go unheard, so up to ATTEMPTS: the kernel measures, and can send, only at
 * the receive socket's grow hits (6.17+: tcp_rcvbuf_grow, a period whose data beats the socket's
 * record). Slow start brings one a round trip, measuring 0.1, 0.15, 0.3, 0.6x the mute, then
 * 1.09-1.26x at the first full window (~0.65 s in), where it is heard in most runs (0.96-1.05x
 * there in two of 15 traced, with 8-15 retransmissions in slow start; heard at the next hit). Once
 * a flow's rate is steady it beats its record seconds apart (1.5-3.6 s between hits traced; one
 * run sat unheard at the max from 0.6 to 2.1 s), so a transfer whose hits at the top of slow start
 * stayed within the mute can end unheard: the suite once saw no event from a 6 s transfer. Each
 * transfer is a fresh slow start, stopped once the max grows; one that is not heard must show that
 * the kernel measured no more than the mute at every grow hit seen (its marks, polled), and the
 * report prints them.
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
import { growthNeed } from "../../src/tuners/tcp_buffer_rules.ts";
import { tbf } from "../../scripts/bench/netns.ts";

const RMEM = "net.ipv4.tcp_rmem";
const START = [4096, 131072, 524288];
const DENO = join(ROOT, "node_modules/.bin/deno");
const TRAFFIC = join(ROOT, "test/support/tcp_traffic.ts");
const PORT = 5311, UDP_PORT = 5312, IPERF_PORT = 5313;
const RX = "198.18.3.1", TX = "198.18.3.2";
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
    const dump = JSON.parse(show("dump")) as { formatted?: RlEntry }[];
    const entry = dump.map((e) => e.formatted).find((f) =>
      f?.key?.netns === inode && f.key.kind === RCV_KIND && f.value?.mute_need !== undefined
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

/** The ~50 ms path from `tx` to `rx` (veth ends `va`/`vb`); returns the UDP stream and its server. */
async function longPath(rx: TestNetns, tx: TestNetns): Promise<{ close(): Promise<void> }[]> {
  execFileSync("ip", [
    ...["link", "add", "va", "netns", rx.name],
    ...["type", "veth", "peer", "name", "vb", "netns", tx.name],
  ]);
  for (const [ns, dev, addr] of [[rx, "va", RX], [tx, "vb", TX]] as const) {
    ns.exec(["ip", "addr", "add", `${addr}/30`, "dev", dev]);
    ns.exec(["ip", "link", "set", dev, "up"]);
  }
  tbf(tx, "vb", "100mbit", "32kb", "20ms"); // data direction
  tbf(rx, "va", "10mbit", "16kb", "40ms"); // ACK direction, kept full below
  const server = inNetns(tx, ["iperf3", "-s", "-p", `${UDP_PORT}`]);
  assert.ok(await waitFor(listening(tx, UDP_PORT), 5000), "the UDP stream's server listens");
  const stream = inNetns(rx, [
    ...["iperf3", "-u", "-c", TX, "-p", `${UDP_PORT}`],
    ...["-b", "10.5M", "-t", "120"],
  ]);
  await new Promise((r) => setTimeout(r, 1000)); // the ACK queue fills
  return [stream, server];
}

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
async function transfer(d: DaemonProcess, tx: TestNetns, marks: number, need: number) {
  const mark = d.lines.length;
  const before = new Set((await serverMarks(marks)).map((m) => `${m.key}@${m.value.at}`));
  const iperf = ["iperf3", "-c", RX, "-p", `${IPERF_PORT}`, "-t", `${TRANSFER_S}`];
  const client = new Deno.Command("ip", {
    args: ["netns", "exec", tx.name, ...iperf],
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
  name: "a settled tcp_rmem max: its need stays in the kernel, a bigger one is heard and grows it",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("needmute", async (sb) => {
      sb.ns.setSysctl(RMEM, START);
      const inode = Deno.statSync(`/run/netns/${sb.ns.name}`).ino!;
      const tx = sb.netns("needtx");
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
        assert.ok(await waitFor(listening(sb.ns, PORT), 15_000), "the sink listens");

        // Growth, then a quiet spell: the max comes back to its floor, the need settled.
        flows();
        await d.waitFor(/Due to need to increase .* change net\.ipv4\.tcp_rmem/);
        const trim = await d.waitFor(
          /Due to steady traffic needing about (\d+) bytes .* change net\.ipv4\.tcp_rmem/,
          30_000,
        );
        const settled = Number(/needing about (\d+) bytes/.exec(trim)![1]);
        assert.deepEqual(sb.ns.sysctl(RMEM), START, "trimmed back to its floor");

        // The same flows: one event sets the threshold, the kernel keeps the rest. 3 s of them:
        // unmuted, the rate limiter would let through two events a second.
        const before = { events: rcvEvents().length, muted: await mutedHits(sock) };
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
        // The margin above holds for a mute at the floor's share of the max, not a higher need.
        assert.equal(need, growthNeed(START[2], 0), `loopback settled at ${settled}`);

        // A transfer over the long path needs the whole max per round trip (1.2x the mute, the
        // header says why): heard once its window is full, grown. A fresh transfer while none is.
        procs.push(...await longPath(sb.ns, tx));
        procs.push(inNetns(sb.ns, ["iperf3", "-s", "-p", `${IPERF_PORT}`]));
        assert.ok(await waitFor(listening(sb.ns, IPERF_PORT), 5000), "iperf3 listens");
        const marks = marksMapOf(d.pid);
        const attempts: Attempt[] = [];
        while (attempts.length < ATTEMPTS && !attempts.some((a) => a.heard.length)) {
          if (attempts.length) await new Promise((r) => setTimeout(r, 1000)); // the server resets
          attempts.push(await transfer(d, tx, marks, need));
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
        const left = rcvEntry(d.pid, inode)?.mute_need ?? 0;
        assert.equal(left, 0, "the growth unmuted the settled max's key");
        assert.equal(await d.stop(), 0, "clean exit");
      } finally {
        for (const p of procs) await p.close();
      }
    }),
});
