/**
 * The daemon's promises around change: admin writes stop the tuning of that sysctl (noticed,
 * persisted across a restart, resumed by `enable`); -R restores originals on SIGTERM; after
 * kill -9 `bpfpilot rollback` restores them and nothing stays attached; a corrupt state file is a
 * clear error that loses nothing; a tuner or hook forced to fail leaves the daemon running.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import {
  isolatedRunArgs,
  LAUNCHER,
  programIdsOf,
  ROOT,
  stillLoaded,
  TestCgroup,
  TestNetns,
} from "../support/daemon.ts";
import { type Sandbox, withSandbox } from "../support/sandbox.ts";

const LOW = [4096, 16384, 65536];
const STARTED = /bpfpilot started/;
const RMEM_CHANGE = /Due to need to increase .* change net\.ipv4\.tcp_rmem/;

function daemonArgs(ns: TestNetns, state: string, cg: TestCgroup, extra: string[] = []) {
  return isolatedRunArgs(ns, state, cg, extra);
}

function cli(args: string[], env: Record<string, string> = {}) {
  // A timeout: a `run` meant to refuse that starts instead would hang the test (spawnSync then
  // sends SIGTERM, and the status it reports fails the test's assertion).
  return spawnSync(LAUNCHER, args, {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...Deno.env.toObject(), ...env },
  });
}

async function scenario(
  tag: string,
  body: (sb: Sandbox) => Promise<void>,
) {
  await withSandbox(tag, async (sb) => {
    sb.ns.setSysctl("net.ipv4.tcp_rmem", LOW);
    await body(sb);
  });
}

Deno.test({
  name: "admin override: a sysctl -w stops tuning it, survives a restart, enable resumes it",
  ignore: !IS_ROOT,
  async fn() {
    await scenario("adm", async ({ ns, state, cg, start }) => {
      const d1 = start();
      await d1.waitFor(STARTED);
      // The admin (a process in the watched cgroup, inside the namespace) sets the value.
      cg.run(`ip netns exec ${ns.name} sysctl -qw net.ipv4.tcp_rmem="4096 16384 70000"`);
      const notice = await d1.waitFor(/modified sysctl 'net\.ipv4\.tcp_rmem'/);
      assert.match(
        notice,
        /^bpfpilot: pid \d+, cmd '(sysctl|\/usr\/sbin\/sysctl|\S*sysctl)' modified sysctl 'net\.ipv4\.tcp_rmem' that tuner 'tcp_buffer' uses; no longer tuning/,
      );
      ns.iperf(3);
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(d1.matching(RMEM_CHANGE), [], "not tuned after the admin's write");
      assert.deepEqual(ns.sysctl("net.ipv4.tcp_rmem"), [4096, 16384, 70000]);
      assert.equal(await d1.stop(), 0);

      // The decision survives a restart.
      const d2 = start();
      await d2.waitFor(STARTED);
      ns.iperf(3);
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(d2.matching(RMEM_CHANGE), [], "still not tuned after a restart");

      // enable resumes it, picked up by the running daemon.
      const en = cli(["enable", "net.ipv4.tcp_rmem", "--state-dir", state]);
      assert.equal(en.status, 0, en.stderr);
      assert.match(en.stdout, /tuning of net\.ipv4\.tcp_rmem resumes \(1 admin override/);
      ns.iperf(3);
      await d2.waitFor(RMEM_CHANGE);
      assert.ok(ns.sysctl("net.ipv4.tcp_rmem")[2] > 70000);
      assert.equal(await d2.stop(), 0);
    });
  },
});

Deno.test({
  name: "-R restores the originals on SIGTERM and nothing stays attached",
  ignore: !IS_ROOT,
  async fn() {
    await scenario("rb", async ({ ns, start }) => {
      const d = start(["-R"]);
      await d.waitFor(STARTED);
      ns.iperf(3);
      await d.waitFor(RMEM_CHANGE);
      assert.ok(ns.sysctl("net.ipv4.tcp_rmem")[2] > LOW[2]);
      const ids = programIdsOf(d.pid);
      assert.ok(ids.length >= 2, "the daemon holds its programs");
      assert.equal(await d.stop("SIGTERM"), 0);
      assert.deepEqual(ns.sysctl("net.ipv4.tcp_rmem"), LOW, "restored on exit");
      assert.ok(
        d.matching(
          /Rolling back sysctl values for 'net\.ipv4\.tcp_rmem' from \(.*\) to original values \(4096 16384 65536\)/,
        ).length === 1,
      );
      assert.ok(await waitFor(() => stillLoaded(ids).length === 0, 3000), "programs detached");
    });
  },
});

Deno.test({
  name: "after kill -9 nothing stays attached and `bpfpilot rollback` restores the originals",
  ignore: !IS_ROOT,
  async fn() {
    await scenario("k9", async ({ ns, state, start }) => {
      const d = start();
      await d.waitFor(STARTED);
      const pgrep = execFileSync("pgrep", ["-x", "bpfpilot"], { encoding: "utf8" });
      assert.ok(pgrep.split("\n").includes(String(d.pid)), "pgrep finds it by name");
      ns.iperf(3);
      await d.waitFor(RMEM_CHANGE);
      const tuned = ns.sysctl("net.ipv4.tcp_rmem");
      assert.ok(tuned[2] > LOW[2]);
      const ids = programIdsOf(d.pid);
      assert.ok(ids.length >= 2, "the daemon holds its programs");
      // SIGKILL the daemon itself (the launcher execs into it, so this is its pid).
      await d.stop("SIGKILL");
      assert.ok(await waitFor(() => stillLoaded(ids).length === 0, 5000), "links died with it");
      assert.deepEqual(ns.sysctl("net.ipv4.tcp_rmem"), tuned, "kill -9 rolls nothing back");

      const dry = cli(["rollback", "--dry-run", "--state-dir", state]);
      assert.equal(dry.status, 0, dry.stderr);
      assert.match(dry.stdout, /sysctl -w net\.ipv4\.tcp_rmem="4096 16384 65536"/);
      const r = cli(["rollback", "--state-dir", state]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /restored [1-9]\d* value/); // tcp_rmem, maybe tcp_wmem too
      assert.deepEqual(ns.sysctl("net.ipv4.tcp_rmem"), LOW);
      const again = cli(["rollback", "--state-dir", state]);
      assert.equal(again.status, 0);
      assert.match(again.stdout, /restored 0 value/);
    });
  },
});

Deno.test({
  name: "rollback leaves a value someone changed since alone, and says so",
  ignore: !IS_ROOT,
  async fn() {
    await scenario("chg", async ({ ns, state, start }) => {
      const d = start();
      await d.waitFor(STARTED);
      ns.iperf(3);
      await d.waitFor(RMEM_CHANGE);
      await d.stop("SIGKILL");
      ns.setSysctl("net.ipv4.tcp_rmem", [4096, 16384, 99999]); // not in the watched cgroup
      const r = cli(["rollback", "--state-dir", state]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(
        r.stderr,
        /left 'net\.ipv4\.tcp_rmem' .* alone: changed since by someone else \(now 4096 16384 99999\)/,
      );
      assert.deepEqual(ns.sysctl("net.ipv4.tcp_rmem"), [4096, 16384, 99999]);
    });
  },
});

Deno.test({
  name: "a corrupt state file: clear error from rollback and run, file untouched, no stack trace",
  ignore: !IS_ROOT,
  async fn() {
    await scenario("bad", ({ ns, state, cg }) => {
      const file = `${state}/state.json`;
      const garbage = '{"format":"bpfpilot-state","version":1,"entries":[{"netns":';
      writeFileSync(file, garbage);
      const r = cli(["rollback", "--state-dir", state]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /state\.json/);
      assert.match(r.stderr, /mv /, "says how to fix it");
      assert.doesNotMatch(r.stderr, /^\s+at /m);
      const run = cli(daemonArgs(ns, state, cg));
      assert.equal(run.status, 1);
      assert.match(run.stderr, /state\.json/);
      assert.doesNotMatch(run.stderr, /^\s+at /m);
      assert.equal(readFileSync(file, "utf8"), garbage, "nothing lost");
      return Promise.resolve();
    });
  },
});

for (
  const fault of [
    "tcp_buffer:load",
    "tcp_buffer:rcvbuf",
    "tcp_buffer:mem_pressure",
    "sysctl:sysctl_write",
  ]
) {
  Deno.test({
    name: `fault injection ${fault}: the daemon reports it and keeps running with the rest`,
    ignore: !IS_ROOT,
    async fn() {
      await scenario("fi", async ({ ns, start }) => {
        // Without override detection the daemon refuses unless told to run degraded.
        const extra = fault.startsWith("sysctl:") ? ["--allow-degraded"] : [];
        const d = start(extra, {
          BPFPILOT_FAULT_INJECT: fault,
        });
        await d.waitFor(STARTED);
        const [tuner, hook] = fault.split(":");
        if (hook === "load" || hook === "rcvbuf" || hook === "sysctl_write") {
          await d.waitFor(new RegExp(`tuner ${tuner} is unavailable: .*fault injected`));
        } else {
          await d.waitFor(
            new RegExp(`tuner ${tuner}: optional hook ${hook} unavailable: fault injected`),
          );
        }
        // Still running, and still tuning when tcp_buffer itself survived.
        ns.iperf(2);
        await new Promise((r) => setTimeout(r, 500));
        const tcpBufferUp = d.matching(/tuner tcp_buffer: active/).length === 1;
        if (tcpBufferUp) await d.waitFor(RMEM_CHANGE);
        assert.equal(await d.stop("SIGTERM"), 0, "clean exit");
      });
    },
  });
}

Deno.test({
  name:
    "writer-less sysctl events (5.10's cgroup/sysctl flavour): own writes ignored, admin's caught",
  ignore: !IS_ROOT,
  async fn() {
    await scenario("fb", async ({ ns, cg, start }) => {
      const d = start(["-d"], {
        BPFPILOT_FAULT_INJECT: "program:bpfp_sy_write",
      });
      await d.waitFor(STARTED);
      assert.match(await d.waitFor(/tuner sysctl: active/), /"program":"bpfp_sy_write_nt"/);
      // Our own write is seen without a writer, recognised by name, value and time.
      ns.iperf(3);
      await d.waitFor(RMEM_CHANGE);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(d.matching(/modified sysctl/), [], "own writes are not the admin's");
      // The admin's write is caught; its namespace unknown, the override holds everywhere.
      cg.run(`ip netns exec ${ns.name} sysctl -qw net.ipv4.tcp_rmem="4096 16384 70000"`);
      await d.waitFor(
        /pid 0, cmd 'unknown \(this kernel does not name sysctl writers\)' modified sysctl 'net\.ipv4\.tcp_rmem' .* in every ns/,
      );
      const changes = d.matching(RMEM_CHANGE).length;
      ns.iperf(3);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(d.matching(RMEM_CHANGE).length, changes, "not tuned after the admin's write");
      assert.deepEqual(ns.sysctl("net.ipv4.tcp_rmem"), [4096, 16384, 70000]);
      assert.equal(await d.stop(), 0);
    });
  },
});

/** RssFile of a process in kB (/proc/<pid>/status). */
function rssFileKb(pid: number): number {
  const m = /^RssFile:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `/proc/${pid}/status has RssFile`);
  return Number(m[1]);
}

/**
 * A copy of the Deno runtime only the daemon will map, as the Debian package installs its own
 * (/usr/lib/bpfpilot/deno): pages that this test's Deno (the same file) also maps would stay.
 */
function privateRuntime(dir: string): string {
  const copy = join(dir, "deno");
  Deno.copyFileSync(Deno.execPath(), copy);
  Deno.chmodSync(copy, 0o755);
  // Written back first: dirty pages cannot leave memory until they are on disk.
  using file = Deno.openSync(copy, { read: true });
  file.syncSync();
  return copy;
}

Deno.test({
  name: "start-up pages: soon after start the runtime's pages that only the start used go back",
  ignore: !IS_ROOT,
  async fn() {
    await scenario("pg", async ({ ns, state, cg, spawnVia }) => {
      const dir = Deno.makeTempDirSync({ prefix: "bpfpilot-runtime-" });
      try {
        const d = spawnVia(privateRuntime(dir), [
          "run",
          "-A",
          "--quiet",
          "--no-config",
          join(ROOT, "dist/bpfpilot.js"),
          ...daemonArgs(ns, state, cg, ["-d"]),
        ]);
        await d.waitFor(STARTED);
        // Before the journal (what loading the bundle touched), before the tuner loads (the
        // journal, sysctl.d and the probe), once started (the ring buffers and the servers) and
        // 3 s later (the first ticks), each release says what it left.
        const rss: Record<string, [number, number]> = {};
        const releases = ["before the journal", "before the tuner loads", "once started"];
        for (const when of releases.concat("3 s after start")) {
          const line = await d.waitFor(new RegExp(`start-up pages released ${when}: `), 10_000);
          const m = new RegExp(
            `released ${when}: \\d+ read-only file mappings \\(\\d+ MB\\) advised out in ` +
              `[\\d.]+ ms, RssFile ([\\d.]+) -> ([\\d.]+) MB`,
          ).exec(line);
          assert.ok(m, line);
          assert.doesNotMatch(line, /refused/);
          rss[when] = [Number(m[1]), Number(m[2])];
          assert.ok(rss[when][1] < rss[when][0], `${when}: RssFile did not fall (${line})`);
        }
        // ~33 MB of the runtime's pages before the journal, ~7 after (what the start still runs
        // comes back as it runs, not what only the bundle's load and compile used).
        const [before, after] = rss["before the journal"];
        assert.ok(after < before - 10, `before the journal: RssFile ${before} -> ${after} MB`);
        assert.ok(rssFileKb(d.pid) < before * 1024, "the idle daemon holds less than the start");
        assert.equal(await d.stop(), 0);
      } finally {
        // A running daemon keeps its unlinked executable mapped.
        Deno.removeSync(dir, { recursive: true });
      }
    });
  },
});
