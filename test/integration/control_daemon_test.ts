/**
 * The control socket and the metrics endpoint of a real daemon (its own namespace, child cgroup
 * and state directory, so the host is never tuned): permissions, every verb, answers that match
 * the kernel's live values, enable/disable that really stop and resume tuning, the admin's
 * override shown as "manual", a fuzz of malformed requests, 100 concurrent clients, the CLI
 * (`-q`, `query`), and OpenMetrics from both `query metrics` and --metrics-listen.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { isDeepStrictEqual } from "node:util";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { LAUNCHER, type TestNetns } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { findSamples, type MetricFamily, parseOpenMetrics } from "../support/openmetrics.ts";
import { requestControl } from "../../src/daemon/control/client.ts";
import { TUNERS } from "../../src/tuners/registry.ts";
import {
  type ControlResponse,
  parseResponseLine,
  VERB_NAMES,
} from "../../src/daemon/control/protocol.ts";
import type {
  RollbackEntry,
  StatusData,
  SummaryData,
  ToggleResult,
  TunableInfo,
  TunableStatus,
  TunerInfo,
} from "../../src/daemon/control/provider.ts";

const RMEM = "net.ipv4.tcp_rmem";
const WMEM = "net.ipv4.tcp_wmem";
const LOW = [4096, 16384, 65536];
const STARTED = /bpfpilot started/;
const RMEM_CHANGE = /Due to need to increase .* change net\.ipv4\.tcp_rmem/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function hostValues(name: string): number[] {
  return execFileSync("sysctl", ["-n", name], { encoding: "utf8" }).trim().split(/\s+/).map(
    Number,
  );
}

async function ask<T>(sock: string, verb: string, target?: string, netns?: string): Promise<T> {
  const r = await requestControl(
    { verb: verb as never, target, netns },
    { socketPath: sock, timeoutMs: 10_000 },
  );
  assert.ok(r.ok, `${verb} ${target ?? ""}: ${JSON.stringify(r)}`);
  return r.data as T;
}

async function askError(sock: string, verb: string, target?: string) {
  const r = await requestControl({ verb: verb as never, target }, { socketPath: sock });
  assert.ok(!r.ok, `${verb} ${target ?? ""} should fail: ${JSON.stringify(r)}`);
  return r.error;
}

function cli(args: string[]) {
  return spawnSync(LAUNCHER, args, { encoding: "utf8", timeout: 60_000 });
}

/** One raw exchange: bytes in, then half-close; every answer line, until the daemon closes. */
async function raw(sock: string, bytes: Uint8Array, halfClose: boolean): Promise<string[]> {
  const conn = await Deno.connect({ transport: "unix", path: sock });
  let text = "";
  try {
    try {
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
      if (halfClose) await conn.closeWrite();
    } catch {
      // the daemon may close first (too large, too many bad lines): fine
    }
    if (!halfClose) return [];
    const buf = new Uint8Array(65536);
    const deadline = setTimeout(() => conn.close(), 10_000);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += decoder.decode(buf.subarray(0, n), { stream: true });
      }
    } catch {
      // reset by the daemon after its answer
    } finally {
      clearTimeout(deadline);
    }
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the deadline
    }
  }
  return text.split("\n").filter((l) => l !== "");
}

/** Deterministic PRNG (mulberry32), so a failing fuzz run can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The namespace's tcp_rmem once it stopped changing (a change may land after the traffic). */
async function settled(ns: TestNetns): Promise<number[]> {
  let last = ns.sysctl(RMEM);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 1200));
    const now = ns.sysctl(RMEM);
    if (now.join(" ") === last.join(" ")) return now;
    last = now;
  }
  return last;
}

function metricsValue(families: MetricFamily[], name: string, labels: Record<string, string>) {
  const found = findSamples(families, name, labels);
  assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}: ${JSON.stringify(found)}`);
  return found[0].value;
}

Deno.test({
  name: "control socket and metrics of a real daemon: every verb, enable/disable, fuzz, clients",
  ignore: !IS_ROOT,
  // The daemon runs every tuner: the sandbox puts back host-wide ones it changes (netdev_budget).
  fn: (t) =>
    withSandbox("ctl", async (sb) => {
      const { ns, cg, state } = sb;
      // Never tuned (the daemon's --netns is ns): it becomes known through the admin's write there.
      const other = sb.netns("ctl2");
      const sock = `${state}/ctl.sock`;
      /** A daemon on this test's namespace and cgroup, with its own state dir and socket. */
      const startOn = (stateDir: string, socket: string, ...extra: string[]) =>
        sb.spawn([
          ...["run", "--stderr", "--state-dir", stateDir, "--netns", ns.name],
          ...["-c", cg.path, "--control-socket", socket, ...extra],
        ]);
      ns.setSysctl(RMEM, LOW);
      const d = startOn(state, sock, "--cooldown", "1", "--metrics-listen", "127.0.0.1:0");
      await d.waitFor(STARTED, 60_000);
      const metricsUrl = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(
        await d.waitFor(/metrics at http/),
      )![1];
      const changes = () => d.matching(RMEM_CHANGE).length;

      await t.step("the socket is a socket, mode 0600, owned by root", () => {
        const info = Deno.lstatSync(sock);
        assert.ok(info.isSocket);
        assert.equal(info.mode! & 0o7777, 0o600);
        assert.equal(info.uid, 0);
      });

      await t.step("every verb answers a valid v1 envelope that matches the kernel", async () => {
        const answered = new Set<string>();
        for (const verb of VERB_NAMES) {
          const target = verb === "enable" || verb === "disable" ? WMEM : undefined;
          await ask(sock, verb, target);
          answered.add(verb);
        }
        await ask(sock, "enable", WMEM); // undo the disable above
        assert.deepEqual([...answered], VERB_NAMES);

        const tuners = await ask<TunerInfo[]>(sock, "tuners");
        assert.deepEqual(
          Object.fromEntries(tuners.map((x) => [x.name, x.state])),
          // Every shipped tuner runs here but route_table: max_size is not enforced on 6.3+.
          Object.fromEntries(
            TUNERS.map((t) => [t.name, t.name === "route_table" ? "unavailable" : "active"]),
          ),
        );
        const tunables = await ask<TunableInfo[]>(sock, "tunables");
        const mine = tunables.find((x) => x.name === RMEM && x.netns === ns.name)!;
        assert.deepEqual(
          [mine.values, mine.managed, mine.overridden, mine.type],
          [LOW, true, false, "integer"],
        );
        const host = tunables.find((x) => x.name === RMEM && x.netns === undefined)!;
        assert.deepEqual(host.values, hostValues(RMEM));
        assert.equal(host.managed, false, "with --netns the host's own tcp_rmem is not tuned");
        const answer = await ask<StatusData>(sock, "status");
        const status = answer.tunables;
        assert.deepEqual(status.find((x) => x.name === RMEM && x.netns === ns.name)!.values, LOW);
        // The daemon names itself: which process, which state directory, up since when.
        assert.equal(answer.daemon?.pid, d.pid);
        assert.equal(answer.daemon?.stateDir, state);
        assert.ok(answer.daemon!.uptimeSeconds >= 0 && answer.daemon!.uptimeSeconds < 600);
        assert.deepEqual(await ask<RollbackEntry[]>(sock, "rollback"), []);
        const summary = await ask<SummaryData>(sock, "summary");
        assert.ok(Date.parse(summary.since) <= Date.now());
        // Metrics by default (--metrics-netns changed): the host's every tunable, none of this
        // namespace, where bpfpilot changed nothing yet (`tunables` above lists it in full).
        const values = findSamples(
          parseOpenMetrics(await ask<string>(sock, "metrics")),
          "bpfpilot_tunable_value",
        );
        assert.deepEqual(values.filter((v) => v.labels.netns === ns.name), []);
        assert.ok(values.some((v) => v.labels.sysctl === RMEM && v.labels.netns === "global"));

        // bpftune's JSON verbs, read as raw bytes off the wire with bare-word requests.
        for (const verb of ["jstatus", "jtunables"]) {
          const [line] = await raw(sock, encoder.encode(`${verb}\n`), true);
          const envelope = JSON.parse(line);
          assert.equal(envelope.ok, true);
          if (verb === "jstatus") {
            assert.deepEqual(envelope.data.tcp_buffer[RMEM], hostValues(RMEM));
          } else {
            assert.deepEqual(envelope.data.tcp_buffer[RMEM], { type: "integer", num_values: 3 });
          }
        }
      });

      // First, while the namespace is at LOW and the tuner has no history there (a buffer/latency
      // correlation from earlier growth could brake the growth after enable).
      await t.step("disable stops the tuning for real, enable resumes it", async () => {
        const off = await ask<ToggleResult>(sock, "disable", "tcp_buffer");
        assert.deepEqual([off.kind, off.state, off.changed], ["tuner", "disabled", true]);
        const tuners = await ask<TunerInfo[]>(sock, "tuners");
        assert.equal(tuners.find((x) => x.name === "tcp_buffer")!.state, "disabled");
        const tunables = await ask<TunableInfo[]>(sock, "tunables");
        assert.ok(tunables.filter((x) => x.tuner === "tcp_buffer").every((x) => !x.managed));

        const before = changes();
        ns.iperf(3);
        await new Promise((r) => setTimeout(r, 1500));
        assert.deepEqual(ns.sysctl(RMEM), LOW, "disabled: not tuned under traffic");
        assert.equal(changes(), before);

        const on = await ask<ToggleResult>(sock, "enable", "tcp_buffer");
        assert.deepEqual([on.state, on.changed], ["active", true]);
        ns.iperf(3);
        assert.ok(
          await waitFor(() => changes() > before && ns.sysctl(RMEM)[2] > LOW[2], 15_000),
          `enabled again: tuned under traffic; daemon said:\n${d.lines.slice(-12).join("\n")}`,
        );

        // One sysctl only: the tuner stays active, that sysctl is unmanaged, then managed again.
        await ask(sock, "disable", WMEM);
        let rows = await ask<TunableInfo[]>(sock, "tunables");
        assert.ok(rows.filter((x) => x.name === WMEM).every((x) => !x.managed));
        assert.ok(rows.some((x) => x.name === RMEM && x.managed));
        const t2 = (await ask<TunerInfo[]>(sock, "tuners")).find((x) => x.name === "tcp_buffer")!;
        assert.equal(t2.state, "active");
        assert.match(t2.reason, /disabled: net\.ipv4\.tcp_wmem/);
        await ask(sock, "enable", WMEM);
        rows = await ask<TunableInfo[]>(sock, "tunables");
        assert.ok(rows.some((x) => x.name === WMEM && x.netns === ns.name && x.managed));

        const ghost = await askError(sock, "disable", "ghost");
        assert.equal(ghost.code, "not-found");
        const sysctlTuner = await askError(sock, "disable", "sysctl");
        assert.equal(sysctlTuner.code, "bad-args");
      });

      await t.step("tuning shows in status, summary, the rollback plan and metrics", async () => {
        await d.waitFor(RMEM_CHANGE); // the growth after enable, above
        const live = await settled(ns);
        assert.ok(live[2] > LOW[2]);
        const status = (await ask<StatusData>(sock, "status")).tunables;
        assert.deepEqual(status.find((x) => x.name === RMEM && x.netns === ns.name)!.values, live);
        const summary = await ask<SummaryData>(sock, "summary");
        const change = summary.changes.find((c) => c.sysctl === RMEM)!;
        assert.deepEqual([change.netns, change.initial, change.current], [ns.name, LOW, live]);
        assert.ok(summary.scenarios.some((s) => s.tunable === RMEM && s.count >= 1));

        const plan = await ask<(RollbackEntry & { command: string })[]>(sock, "rollback");
        const entry = plan.find((p) => p.sysctl === RMEM)!;
        assert.deepEqual([entry.netns, entry.original, entry.current], [ns.name, LOW, live]);
        assert.equal(
          entry.command,
          `ip netns exec ${ns.name} sysctl -w ${RMEM}="${LOW.join(" ")}"`,
        );
        assert.deepEqual(ns.sysctl(RMEM), live, "the rollback verb only plans");

        const viaSocket = parseOpenMetrics(await ask<string>(sock, "metrics"));
        const response = await fetch(metricsUrl);
        assert.equal(response.status, 200);
        assert.match(response.headers.get("content-type")!, /^application\/openmetrics-text/);
        const viaHttp = parseOpenMetrics(await response.text());
        for (const families of [viaSocket, viaHttp]) {
          const now = ns.sysctl(RMEM);
          assert.equal(
            metricsValue(families, "bpfpilot_tunable_value", {
              sysctl: RMEM,
              netns: ns.name,
              index: "2",
            }),
            now[2],
          );
          assert.equal(
            metricsValue(families, "bpfpilot_tunable_value", {
              sysctl: RMEM,
              netns: "global",
              index: "2",
            }),
            hostValues(RMEM)[2],
          );
          assert.ok(
            metricsValue(families, "bpfpilot_tunable_changes_total", {
              sysctl: RMEM,
              netns: ns.name,
            }) >= 1,
          );
          assert.ok(metricsValue(families, "bpfpilot_events_total", { tuner: "tcp_buffer" }) > 0);
          assert.equal(
            metricsValue(families, "bpfpilot_events_dropped_total", { tuner: "tcp_buffer" }),
            0,
          );
          assert.ok(
            metricsValue(families, "bpfpilot_scenario_total", { tuner: "tcp_buffer" }) >= 1,
          );
          assert.equal(
            metricsValue(families, "bpfpilot_hook_info", { tuner: "tcp_buffer", hook: "rcvbuf" }),
            1,
          );
          assert.equal(
            metricsValue(families, "bpfpilot_hook_info", { tuner: "sysctl", hook: "sysctl_write" }),
            1,
          );
          assert.ok(metricsValue(families, "bpfpilot_process_resident_memory_bytes", {}) > 1e6);
          assert.ok(metricsValue(families, "bpfpilot_process_cpu_seconds_total", {}) > 0);
        }
      });

      await t.step(
        "the admin's write shows the tuner as manual; enable <sysctl> resumes",
        async () => {
          cg.run(`ip netns exec ${ns.name} sysctl -qw ${RMEM}="4096 16384 70000"`);
          await d.waitFor(/modified sysctl 'net\.ipv4\.tcp_rmem'/);
          const tuner = (await ask<TunerInfo[]>(sock, "tuners")).find((x) =>
            x.name === "tcp_buffer"
          )!;
          assert.equal(tuner.state, "manual");
          assert.match(
            tuner.reason,
            new RegExp(`admin changed ${RMEM} in netns ${ns.name} \\(pid`),
          );
          const row = (await ask<TunableInfo[]>(sock, "tunables")).find((x) =>
            x.name === RMEM && x.netns === ns.name
          )!;
          assert.deepEqual([row.overridden, row.managed], [true, false]);
          const on = await ask<ToggleResult>(sock, "enable", RMEM);
          assert.deepEqual([on.changed, on.state], [true, "managed"]);
          const after = (await ask<TunerInfo[]>(sock, "tuners")).find((x) =>
            x.name === "tcp_buffer"
          )!;
          assert.equal(after.state, "active");
        },
      );

      await t.step(
        "tunables/status: elsewhere only what bpfpilot did by default; --netns all, <name>",
        async () => {
          const inode = Deno.statSync(`/run/netns/${other.name}`).ino;
          const ADMIN = [4096, 16384, 80000];
          cg.run(`ip netns exec ${other.name} sysctl -qw ${RMEM}="${ADMIN.join(" ")}"`);
          await d.waitFor(
            new RegExp(`modified sysctl 'net\\.ipv4\\.tcp_rmem'.*\\(inode ${inode}\\)`),
          );
          const names = (rows: { name: string; netns?: string }[], where: string) =>
            rows.filter((x) => x.netns === where).map((x) => x.name).sort();
          // Default: there, only the sysctl the admin overrode; --netns's namespace in full.
          const rows = await ask<TunableInfo[]>(sock, "tunables");
          assert.deepEqual(names(rows, other.name), [RMEM]);
          const row = rows.find((x) => x.netns === other.name)!;
          assert.deepEqual([row.values, row.overridden, row.managed], [ADMIN, true, false]);
          assert.ok(names(rows, ns.name).includes(WMEM), "--netns's namespace: every tunable");
          const status = (await ask<StatusData>(sock, "status")).tunables;
          assert.deepEqual(names(status, other.name), [RMEM]);
          // all: every tunable of it too, as tunables listed them before the bound.
          const all = await ask<TunableInfo[]>(sock, "tunables", undefined, "all");
          const every = names(all, other.name);
          assert.ok(every.includes(RMEM) && every.includes(WMEM), every.join());
          assert.deepEqual(
            names((await ask<StatusData>(sock, "status", undefined, "all")).tunables, other.name),
            every,
          );
          const host = await ask<TunableInfo[]>(sock, "tunables", undefined, "global");
          assert.ok(host.length > 0 && host.every((x) => x.netns === undefined));
          assert.deepEqual(
            host.map((x) => x.name),
            rows.filter((x) => x.netns === undefined).map((x) => x.name),
          );

          // One namespace, by name or key, from the CLI: every tunable there with live values.
          for (const which of [other.name, `ns:${inode}`]) {
            const q = cli(["query", "tunables", "--netns", which, "--json", "--socket", sock]);
            assert.equal(q.status, 0, q.stderr);
            const one = JSON.parse(q.stdout) as TunableInfo[];
            assert.ok(one.every((x) => x.netns === other.name), q.stdout);
            assert.deepEqual(names(one, other.name), every);
            assert.deepEqual(one.find((x) => x.name === WMEM)!.values, other.sysctl(WMEM));
          }
          const text = cli(["query", "status", "--socket", sock]);
          assert.equal(text.status, 0, text.stderr);
          assert.match(text.stdout, /\n\nOther namespaces: only the sysctls bpfpilot changed/);
          const ghost = cli(["query", "status", "--netns", "nosuch-ns", "--socket", sock]);
          assert.equal(ghost.status, 1);
          assert.match(ghost.stderr, /no network namespace "nosuch-ns" known to bpfpilot/);
          const garbage = cli(["query", "status", "--netns", "a/b", "--socket", sock]);
          assert.equal(garbage.status, 2);
          assert.match(garbage.stderr, /expected changed, all, global, a namespace's name/);

          await ask(sock, "enable", RMEM); // the admin's override there ends
          assert.deepEqual(names(await ask<TunableInfo[]>(sock, "tunables"), other.name), []);
        },
      );

      await t.step("a fuzz of 3000 malformed requests leaves the daemon answering", async () => {
        const seed = Number(Deno.env.get("BPFPILOT_FUZZ_SEED") ?? Date.now() % 1e9);
        const random = prng(seed);
        const int = (n: number) => Math.floor(random() * n);
        const valid = VERB_NAMES.map((verb) => JSON.stringify({ v: 1, verb, args: {} }));
        const cases = [
          () => Uint8Array.from({ length: 1 + int(600) }, () => int(256)), // random bytes
          () => encoder.encode("x".repeat(4097 + int(20000))), // too large
          () => { // a valid request, truncated or with a character flipped
            const v = valid[int(valid.length)];
            const cut = int(v.length);
            return encoder.encode(
              random() < 0.5 ? v.slice(0, cut) : v.slice(0, cut) + '"}{,\\'[int(5)] + v.slice(cut),
            );
          },
          () => new Uint8Array([0x73, 0xc3, 0x28, 0xff]), // invalid UTF-8
          () => encoder.encode(`{"v":${int(5)},"verb":"status","args":{"target":"${int(9)}"}}`),
          () => encoder.encode(`${["enable", "disable", "help", "status"][int(4)]} a b c`),
          () => encoder.encode(`{"v":1,"verb":"enable","args":{"target":"../../etc;rm -rf"}}`),
          () => encoder.encode(Array.from({ length: 30 }, () => `junk${int(99)}`).join("\n")),
        ];
        let answers = 0;
        let next = 0;
        const TOTAL = 3000;
        const worker = async () => {
          while (next < TOTAL) {
            next++;
            const body = cases[int(cases.length)]();
            const vanish = random() < 0.1; // send part of it and disappear
            const bytes = vanish
              ? body.slice(0, int(body.length))
              : new Uint8Array([...body, 0x0a]);
            const lines = await raw(sock, bytes, !vanish);
            for (const line of lines) {
              const r: ControlResponse = parseResponseLine(line);
              if (!r.ok) assert.notEqual(r.error.code, "internal", `seed ${seed}: ${line}`);
              answers++;
            }
            if (!vanish) assert.ok(lines.length >= 1, `seed ${seed}: no answer`);
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        assert.ok(answers >= TOTAL * 0.8, `seed ${seed}: ${answers} answers`);

        const status = (await ask<StatusData>(sock, "status")).tunables;
        assert.deepEqual(
          status.find((x) => x.name === RMEM && x.netns === ns.name)!.values,
          ns.sysctl(RMEM),
        );
        assert.deepEqual(d.matching(/control connection failed|internal error/), []);
        // Garbage never switched anything off.
        const tuners = await ask<TunerInfo[]>(sock, "tuners");
        assert.ok(
          tuners.filter((x) => x.name !== "route_table").every((x) => x.state === "active"),
          JSON.stringify(tuners),
        );
      });

      await t.step("100 concurrent clients all get the right answer", async () => {
        const before = (await ask<StatusData>(sock, "status")).tunables;
        // More than the daemon's 64 served at once: the rest are told `busy` and retry.
        const replies = await Promise.allSettled(
          Array.from(
            { length: 100 },
            () => requestControl({ verb: "status" }, { socketPath: sock, timeoutMs: 20_000 }),
          ),
        );
        const lost = replies.filter((r) => r.status === "rejected");
        assert.deepEqual(
          lost.map((r) => String((r as PromiseRejectedResult).reason)).slice(0, 3),
          [],
          `${lost.length} of 100 clients got no answer`,
        );
        // The daemon keeps tuning meanwhile (a settle trim of tcp_wmem 5 s after the last
        // growth): every row must match, values wherever they were the same before and after.
        const after = (await ask<StatusData>(sock, "status")).tunables;
        const rowsOnly = (rows: TunableStatus[]) => rows.map(({ values: _, ...row }) => row);
        assert.deepEqual(rowsOnly(after), rowsOnly(before));
        const steady = before.filter((row, i) => isDeepStrictEqual(row.values, after[i].values));
        assert.ok(steady.length >= before.length - 2, "most values held still");
        for (const r of replies) {
          const reply = (r as PromiseFulfilledResult<ControlResponse>).value;
          assert.ok(reply.ok, JSON.stringify(reply));
          const rows = (reply.data as StatusData).tunables;
          assert.deepEqual(rowsOnly(rows), rowsOnly(before));
          for (const [i, row] of before.entries()) {
            if (steady.includes(row)) assert.deepEqual(rows[i].values, row.values, row.name);
          }
        }
      });

      await t.step("the CLI: bpfpilot -q tuners, query jstatus, query metrics", () => {
        const q = cli(["-q", "tuners", "--control-socket", sock]);
        assert.equal(q.status, 0, q.stderr);
        assert.match(q.stdout, /^TUNER\s+STATE\s+REASON\n/);
        assert.match(q.stdout, /\ntcp_buffer\s+active\s+hooks: rcvbuf/);
        const root = cli(["--control-socket", sock, "query", "tuners"]);
        assert.equal(root.status, 0, root.stderr);

        const js = cli(["query", "jstatus", "--control-socket", sock]);
        assert.equal(js.status, 0, js.stderr);
        const jstatus = JSON.parse(js.stdout);
        assert.deepEqual(jstatus.tcp_buffer[RMEM], hostValues(RMEM));
        const qj = cli(["-q", "jtunables", "--control-socket", sock]);
        assert.equal(qj.status, 0, qj.stderr);
        assert.deepEqual(JSON.parse(qj.stdout).tcp_buffer[RMEM], {
          type: "integer",
          num_values: 3,
        });

        const m = cli(["query", "metrics", "--control-socket", sock]);
        assert.equal(m.status, 0, m.stderr);
        const families = parseOpenMetrics(m.stdout);
        assert.ok(findSamples(families, "bpfpilot_tunable_value", { sysctl: RMEM }).length >= 6);

        const bad = cli(["query", "disable", "ghost", "--control-socket", sock]);
        assert.equal(bad.status, 1);
        assert.match(bad.stderr, /no tuner or sysctl named 'ghost'/);
      });

      await t.step(
        "metrics show only what bpfpilot changed there; all of it with `all`",
        async () => {
          const changed = new Set(
            (await ask<SummaryData>(sock, "summary")).changes.filter((c) => c.netns === ns.name)
              .map((c) => c.sysctl),
          );
          const plan = await ask<RollbackEntry[]>(sock, "rollback");
          for (const p of plan) if (p.netns === ns.name) changed.add(p.sysctl);
          const inNs = (families: MetricFamily[]) =>
            new Set(
              findSamples(families, "bpfpilot_tunable_value").filter((v) =>
                v.labels.netns === ns.name
              ).map((v) => v.labels.sysctl),
            );
          const shown = inNs(parseOpenMetrics(await ask<string>(sock, "metrics")));
          assert.ok(shown.has(RMEM));
          assert.deepEqual([...shown].filter((s) => !changed.has(s)), [], "only changed sysctls");
          // A daemon with --metrics-netns all (advising: it changes nothing) shows them all.
          const other = sb.stateDir();
          const otherSock = `${other}/all.sock`;
          const all = startOn(other, otherSock, "--advise", "--metrics-netns", "all");
          try {
            await all.waitFor(STARTED, 60_000);
            const every = inNs(parseOpenMetrics(await ask<string>(otherSock, "metrics")));
            const perNetns = new Set(
              (await ask<TunableInfo[]>(otherSock, "tunables")).filter((x) => x.netns === ns.name)
                .map((x) => x.name),
            );
            assert.ok(
              every.has(RMEM) && every.has(WMEM) && every.size > shown.size,
              [...every].join(),
            );
            assert.deepEqual([...every].sort(), [...perNetns].sort(), "as `tunables` lists them");
            assert.equal(await all.stop("SIGTERM"), 0);
          } finally {
            await all.stop("SIGKILL").catch(() => {});
          }
        },
      );

      await t.step(
        "a second daemon on the same socket is refused with a clear message",
        async () => {
          const second = startOn(sb.stateDir(), sock);
          assert.equal(await second.exited(), 1);
          assert.ok(
            second.matching(/another bpfpilot daemon is already running \(its control socket/)
              .length > 0,
            second.lines.join("\n"),
          );
          await ask(sock, "help"); // the first one is unharmed
        },
      );

      await t.step("on SIGTERM the socket goes away and the endpoint closes", async () => {
        assert.equal(await d.stop("SIGTERM"), 0);
        assert.throws(() => Deno.lstatSync(sock), Deno.errors.NotFound);
        await assert.rejects(() => fetch(metricsUrl).then((r) => r.body?.cancel()));
      });
    }),
});

Deno.test({
  name: "control socket start-up: refused paths and addresses are clear errors; it can be off",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("cts", async ({ state, start, args }) => {
      const remote = cli(args(["--metrics-listen", "0.0.0.0:9101"]));
      assert.equal(remote.status, 2);
      assert.match(remote.stderr, /refusing to serve metrics on non-loopback address 0\.0\.0\.0/);
      assert.match(remote.stderr, /--metrics-allow-remote/);

      const file = `${state}/not-a-socket`;
      Deno.writeTextFileSync(file, "precious");
      const blocked = start(["--control-socket", file]);
      assert.equal(await blocked.exited(), 1);
      assert.ok(
        blocked.matching(/not-a-socket exists and is not a socket; refusing to replace it/).length,
        blocked.lines.join("\n"),
      );
      assert.ok(blocked.lines.every((l) => !/^\s+at /.test(l)), "no stack trace");
      assert.equal(Deno.readTextFileSync(file), "precious");

      const group = cli(args(["--control-group", "no-such-group-bpfp"]));
      assert.equal(group.status, 2);
      assert.match(group.stderr, /control group 'no-such-group-bpfp' does not exist; create it/);

      // Without --control-socket, a daemon with its own state directory listens there, and
      // `-q` given the same --state-dir finds it. --control-group opens it to that group.
      const nogroup = Deno.readTextFileSync("/etc/group").split("\n").map((l) => l.split(":"))
        .find((f) => f[0] === "nogroup");
      assert.ok(nogroup, "Debian's nogroup exists");
      const derived = start(["--control-group", "nogroup"]);
      try {
        await derived.waitFor(STARTED, 60_000);
        const info = Deno.lstatSync(`${state}/control.sock`);
        assert.ok(info.isSocket);
        assert.equal(info.mode! & 0o7777, 0o660);
        assert.equal(info.gid, Number(nogroup[2]));
        const q = cli(["-q", "tuners", "--state-dir", state]);
        assert.equal(q.status, 0, q.stderr);
        assert.match(q.stdout, /tcp_buffer\s+active/);
      } finally {
        assert.equal(await derived.stop(), 0);
      }

      const off = start(["--no-control-socket"]);
      try {
        await off.waitFor(STARTED, 60_000);
        const names = [...Deno.readDirSync(state)].map((e) => e.name);
        assert.ok(!names.includes("control.sock"), names.join(" "));
        assert.deepEqual(off.matching(/control socket/), []);
      } finally {
        assert.equal(await off.stop(), 0);
      }
    }),
});
