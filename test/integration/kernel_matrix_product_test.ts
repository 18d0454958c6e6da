/**
 * The product on real kernels: scripts/kernel-matrix boots Debian's 5.10, 6.1, 6.12 and newest
 * kernels under QEMU (plus the host) and runs the bundle there: support, the daemon tuning under
 * loopback traffic, and fault injection of every hook on 6.1. Every kernel must pass: the
 * layout-dependent reads (sk_userlocks as a bitfield before 6.9, a byte after) and the helper
 * differences (5.10's cgroup/sysctl) are exercised here and nowhere else. Downloads the kernels
 * into /var/cache/bpfpilot/kernel-matrix on first use (about a minute); about 2 minutes after.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { IS_ROOT } from "../support/kernel.ts";
import { ROOT } from "../support/daemon.ts";

interface KernelResult {
  release: string;
  label: string;
  result: string;
  reason: string;
  support:
    | {
      level: string;
      hooks: { tuner: string; hook: string; chosen: string | null; fallback?: string | null }[];
    }
    | null;
  daemon: { exit: number; tuned: boolean } | null;
  fault: { target: string; timings: Record<string, number> }[] | null;
  notes: string[];
  secs: number | null;
  tries: number | null;
  timings: Record<string, number> | null;
}

const MATRIX_TIMEOUT_MIN = 25;

Deno.test({
  name:
    "kernel matrix: bpfpilot loads, tunes and survives hook faults on 5.10, 6.1, 6.12, newest, host",
  ignore: !IS_ROOT,
  fn() {
    const results = mkdtempSync(join(tmpdir(), "bpfp-km-"));
    try {
      const r = spawnSync("bash", [
        join(ROOT, "scripts/kernel-matrix"),
        "--fault-injection",
        // 20 s of traffic, not 10: with five guests sharing 2 emulated cores, the newest kernel's
        // daemon once found no limit within 10 s (alone it tunes within the 10 s window).
        "--window",
        "20",
        // The guests keep the script's bound (900 s with fault injection): 6.1's guest, every
        // hook's fault in turn, took 787-941 s in whole-suite runs while each daemon start read
        // the runtime back over 9p (its pages given back: MADV_PAGEOUT) and each fault run lasted
        // the 20 s window; 368 s alone, 440 s here, since the guests keep those pages mapped and a
        // fault run lasts its own 5 s of traffic (the per-case steps are logged below).
        "--json",
      ], {
        encoding: "utf8",
        env: { ...Deno.env.toObject(), BPFPILOT_KM_RESULTS: results },
        // 12-16 min in whole-suite runs before that (7 min 20 s after), once past the old 15 min
        // bound (no output then but a JSON error): the bound is for a hung guest, not a slow one.
        timeout: MATRIX_TIMEOUT_MIN * 60 * 1000,
        maxBuffer: 64 << 20,
      });
      if (r.error || r.status === null || !r.stdout.trim()) {
        assert.fail(
          `scripts/kernel-matrix gave no result (${
            r.error ? r.error.message : `signal ${r.signal}`
          }; bound ${MATRIX_TIMEOUT_MIN} min); its stderr ends:\n${(r.stderr ?? "").slice(-3000)}`,
        );
      }
      const doc = JSON.parse(r.stdout) as { kernels: KernelResult[] };
      // Where the matrix's time went, in the suite's log: the guests' steps per kernel.
      const steps = (t: Record<string, number> | null) =>
        Object.entries(t ?? {}).map(([step, secs]) => `${step} ${secs}`).join(", ");
      for (const k of doc.kernels) {
        console.log(
          `  ${k.label}: ${k.result}, ${k.secs ?? "?"} s in ${k.tries ?? 1} boot(s) [${
            steps(k.timings)
          }]`,
        );
        // each fault case: seconds since its daemon was started, and its own start-up figure
        for (const f of k.fault ?? []) console.log(`    fault ${f.target} [${steps(f.timings)}]`);
      }
      const summary = doc.kernels.map((k) => `${k.label}: ${k.result} ${k.reason ?? ""}`).join(
        "\n",
      );
      assert.equal(r.status, 0, `${summary}\n${r.stderr.slice(-3000)}`);
      const labels = doc.kernels.map((k) => k.label);
      for (const want of ["5.10", "6.1", "6.12", "newest", "host"]) {
        assert.ok(labels.includes(want), `${want} ran: ${labels}`);
      }
      for (const k of doc.kernels) {
        assert.equal(k.result, "pass", `${k.label}: ${k.reason}`);
        assert.ok(k.support && ["full", "legacy"].includes(k.support.level), k.label);
        assert.equal(k.daemon?.exit, 0, k.label);
        assert.equal(k.daemon?.tuned, true, `${k.label}: the daemon tuned under traffic`);
        const rcv = k.support!.hooks.find((h) => h.tuner === "tcp_buffer" && h.hook === "rcvbuf");
        assert.ok(rcv?.chosen, `${k.label}: rcvbuf attached`);
        const sy = k.support!.hooks.find((h) => h.tuner === "sysctl");
        assert.equal(sy?.chosen, "cgroup", `${k.label}: admin-override detection attached`);
        // tcp_conn's sockops program (sk storage, bpf_skc_to_tcp_sock): loads, or says why not.
        const tc = k.support!.hooks.find((h) => h.tuner === "tcp_conn" && h.hook === "sockops");
        assert.ok(tc, `${k.label}: tcp_conn probed`);
        if (!tc.chosen) {
          assert.ok(
            k.notes.some((n) => n.startsWith("tcp_conn/sockops: no hook (")),
            `${k.label}: tcp_conn says why it cannot load`,
          );
        }
        const nc = k.support!.hooks.find((h) =>
          h.tuner === "neigh_table" && h.hook === "neigh_create"
        );
        assert.ok(nc?.chosen, `${k.label}: neigh_table's neigh_create attached`);
        const udp = k.support!.hooks.find((h) => h.tuner === "udp_buffer" && h.hook === "udp_rcvq");
        assert.ok(udp?.chosen, `${k.label}: udp_buffer's udp_rcvq attached`);
        // ip_frag: fentry/kprobe in the guests; on the host neither, and support names the poll.
        const frag = k.support!.hooks.find((h) => h.tuner === "ip_frag" && h.hook === "frag4");
        if (k.label === "host") {
          assert.equal(frag?.chosen, null, "host: no reassembly hook attaches");
          assert.match(frag?.fallback ?? "", /poll of \/proc\/net\/sockstat/);
        } else assert.ok(frag?.chosen, `${k.label}: ip_frag's frag4 attached`);
        // route_table: no kernel here enforces max_size any more (6.3, and Debian's 5.10/6.1
        // took the stable backport): unavailable with why, everywhere; in the guests the run
        // forced on proves its hook fires, max_size grows and -R restores it (failures if not).
        const rt = k.support!.hooks.find((h) => h.tuner === "route_table");
        assert.equal(rt, undefined, `${k.label}: route_table not probed`);
        assert.ok(
          k.notes.some((n) => /^route_table unavailable: .*not enforced by this kernel/.test(n)),
          `${k.label}: ${k.notes.join("; ")}`,
        );
        if (k.label !== "host") {
          assert.ok(
            k.notes.some((n) => /^route_table forced on .*max_size \d+ -> \d+ in/.test(n)),
            `${k.label}: forced route_table run grew max_size: ${k.notes.join("; ")}`,
          );
        }
      }
    } finally {
      rmSync(results, { recursive: true, force: true });
    }
  },
});
