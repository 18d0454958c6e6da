/**
 * The neigh_table tuner for real. The host's ARP thresholds are lowered for the test (and put
 * back whatever happens); neighbour entries in a stale, garbage-collectable state are added to a
 * veth in a namespace of the test's own until the table nears gc_thresh3. The daemon grows all
 * three thresholds (the table is host-wide: the pressure came from the test's namespace and the
 * log says so), logs each step once, and `-R` or `bpfpilot rollback` puts all three back. An
 * admin `sysctl -w` of gc_thresh3 stops it.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import {
  type DaemonProcess,
  LAUNCHER,
  type TestCgroup,
  type TestNetns,
  withHostSysctls,
} from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";

const THRESH = [1, 2, 3].map((i) => `net.ipv4.neigh.default.gc_thresh${i}`);
/** Low enough that a few dozen entries near it, well above the host's own handful. */
const LOW = [16, 32, 64];
const STARTED = /bpfpilot started/;

function hostThresholds(): number[] {
  return THRESH.map((n) => Number(execFileSync("sysctl", ["-n", n], { encoding: "utf8" })));
}

function setHostThresholds(v: number[]): void {
  THRESH.forEach((n, i) => execFileSync("sysctl", ["-qw", `${n}=${v[i]}`]));
}

/** A veth pair inside the namespace; entries go on `nt0` (10.77.0.0/16: a 262144 ceiling). */
function addVeth(ns: TestNetns): void {
  ns.exec(["ip", "link", "add", "nt0", "type", "veth", "peer", "name", "nt1"]);
  ns.exec(["ip", "addr", "add", "10.77.0.1/16", "dev", "nt0"]);
  ns.exec(["ip", "link", "set", "nt0", "up"]);
  ns.exec(["ip", "link", "set", "nt1", "up"]);
}

/**
 * Adds stale (garbage-collectable, so counted against gc_thresh3) neighbour entries in batches
 * until `done()` or `count` entries were tried; refused ones ("No buffer space") are skipped.
 */
async function addEntries(ns: TestNetns, from: number, count: number, done: () => boolean) {
  const batch = 16;
  for (let i = from; i < from + count && !done(); i += batch) {
    const lines = [];
    for (let j = i; j < i + batch; j++) {
      const mac = `02:00:00:00:${((j >> 8) & 255).toString(16)}:${(j & 255).toString(16)}`;
      lines.push(`neigh replace 10.77.${(j >> 8) + 1}.${j & 255} lladdr ${mac} dev nt0 nud stale`);
    }
    spawnSync("ip", ["netns", "exec", ns.name, "ip", "-force", "-batch", "-"], {
      input: lines.join("\n") + "\n",
      encoding: "utf8",
    });
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function withNeighDaemon(
  tag: string,
  extra: string[],
  body: (r: { ns: TestNetns; daemon: DaemonProcess; state: string; cg: TestCgroup }) => Promise<
    void
  >,
) {
  await withHostSysctls(THRESH, () =>
    withSandbox(tag, async ({ ns, cg, state, start }) => {
      addVeth(ns);
      setHostThresholds(LOW);
      const daemon = start(extra.length ? extra : ["--allow", "neigh_table"]);
      await daemon.waitFor(STARTED);
      await body({ ns, daemon, state, cg });
    }));
}

const UPDATED =
  /updated thresholds for arp_cache table, dev 'nt0' \(ifindex \d+\) thresh1: (\d+) to (\d+), thresh2: (\d+) to (\d+), thresh3: (\d+) to (\d+); the table is host-wide, the pressure came from non-global ns \(inode \d+\)$/;

function checkGrowthLog(d: DaemonProcess): number[] {
  const updated = d.matching(UPDATED);
  assert.ok(updated.length >= 1, d.lines.join("\n"));
  assert.equal(new Set(updated).size, updated.length, "each step logged once");
  const steps = updated.map((l) => UPDATED.exec(l)!.slice(1).map(Number));
  assert.deepEqual([steps[0][0], steps[0][2], steps[0][4]], LOW, "the first step starts low");
  for (let i = 1; i < steps.length; i++) {
    assert.deepEqual(
      [steps[i][0], steps[i][2], steps[i][4]],
      [steps[i - 1][1], steps[i - 1][3], steps[i - 1][5]],
      "each step starts where the last ended",
    );
  }
  const scenario = d.matching(
    /Scenario 'neighbour table nearly full' occurred for tunable 'net\.ipv4\.neigh\.default\.gc_thresh3' in global ns/,
  );
  assert.equal(scenario.length, updated.length);
  assert.equal(
    d.matching(/Due to neighbour table nearly full change net\.ipv4\.neigh\.default\.gc_thresh1 /)
      .length,
    updated.length,
  );
  assert.deepEqual(d.matching(/modified sysctl/), [], "our own writes are not the admin's");
  const last = steps.at(-1)!;
  return [last[1], last[3], last[5]];
}

Deno.test({
  name: "neigh_table grows gc_thresh1..3 as the ARP table fills; -R restores all three",
  ignore: !IS_ROOT,
  async fn() {
    await withNeighDaemon("nt", ["-R", "--allow", "neigh_table"], async ({ ns, daemon }) => {
      const grown = () => hostThresholds()[2] >= 160;
      await addEntries(ns, 0, 400, grown);
      assert.ok(grown(), `gc_thresh3 grew: ${hostThresholds()}`);
      const live = hostThresholds();
      assert.ok(live[0] > LOW[0] && live[1] > LOW[1] && live[2] > LOW[2], `${live}`);
      assert.ok(live[0] <= live[1] && live[1] <= live[2]);
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.deepEqual(checkGrowthLog(daemon), live, "the last logged step is the live value");
      for (const n of THRESH) {
        assert.equal(
          daemon.matching(new RegExp(`^bpfpilot: sysctl -w ${n.replaceAll(".", "\\.")}=`)).length,
          1,
          `the summary replicates ${n}`,
        );
      }
      assert.deepEqual(hostThresholds(), LOW, "-R put all three back");
    });
  },
});

Deno.test({
  name: "neigh_table: after a kill -9, `bpfpilot rollback` restores all three thresholds",
  ignore: !IS_ROOT,
  async fn() {
    await withNeighDaemon("ntrb", [], async ({ ns, daemon, state }) => {
      await addEntries(ns, 0, 400, () => hostThresholds()[2] > LOW[2]);
      await daemon.waitFor(UPDATED, 5000);
      await daemon.stop("SIGKILL");
      assert.ok(hostThresholds()[2] > LOW[2]);
      const r = spawnSync(LAUNCHER, ["rollback", "--state-dir", state], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(hostThresholds(), LOW, r.stderr);
      assert.match(r.stdout, /restored 3 value\(s\)/);
      for (const n of THRESH) {
        assert.match(
          r.stderr,
          new RegExp(`Rolling back sysctl values for '${n.replaceAll(".", "\\.")}'`),
        );
      }
    });
  },
});

Deno.test({
  name: "neigh_table: an admin sysctl -w of gc_thresh3 stops it (thresh1 and thresh2 too)",
  ignore: !IS_ROOT,
  async fn() {
    // bpftune's plugin names work too: every tuner but this one is switched off.
    const off = ["--disable", "tcp_buffer_tuner.so", "--disable", "route_table_tuner.so"];
    await withNeighDaemon("ntadm", off, async ({ ns, daemon, cg }) => {
      cg.run(`sysctl -qw ${THRESH[2]}=${LOW[2]}`);
      await daemon.waitFor(
        /modified sysctl 'net\.ipv4\.neigh\.default\.gc_thresh3' that tuner 'neigh_table' uses/,
      );
      await addEntries(ns, 0, 120, () => false);
      await daemon.waitFor(/not tuning the neighbour tables: the administrator took over/, 5000);
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.deepEqual(hostThresholds(), LOW, "nothing changed");
      assert.deepEqual(daemon.matching(/updated thresholds|change net\.ipv4\.neigh/), []);
    });
  },
});

Deno.test({
  name: "neigh_table shrinks the thresholds back to the start values once the table stays empty",
  ignore: !IS_ROOT,
  async fn() {
    await withNeighDaemon("ntsh", ["--allow", "neigh_table"], async ({ ns, daemon }) => {
      await addEntries(ns, 0, 400, () => hostThresholds()[2] >= 100);
      assert.ok(hostThresholds()[2] >= 100, `${hostThresholds()}`);
      ns.exec(["ip", "neigh", "flush", "dev", "nt0"]);
      // 30 s of a nearly empty table, then one step a cool-down (1 s) down to the start values.
      await daemon.waitFor(/reduced thresholds for arp_cache table/, 45_000);
      const back = await new Promise<boolean>((resolve) => {
        const t0 = Date.now();
        const poll = () => {
          if (hostThresholds().every((v, i) => v === LOW[i])) resolve(true);
          else if (Date.now() - t0 > 15_000) resolve(false);
          else setTimeout(poll, 250);
        };
        poll();
      });
      assert.ok(back, `back at the start values: ${hostThresholds()}`);
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.ok(
        daemon.matching(/Scenario 'neighbour table nearly empty' occurred for tunable/).length >= 1,
      );
      assert.deepEqual(hostThresholds(), LOW, "not below them either");
    });
  },
});
