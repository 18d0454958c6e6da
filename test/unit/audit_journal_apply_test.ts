/**
 * `audit --apply` through the journal, with in-memory sysctls and a real journal in a temporary
 * directory: what is written and recorded (so rollback restores it), what is refused and why,
 * and the refusal while a daemon holds the state directory.
 */
import assert from "node:assert/strict";
import { findingNetnsKey, journalApplyHook } from "../../src/audit/journal_apply.ts";
import type { Finding } from "../../src/audit/types.ts";
import { Journal } from "../../src/daemon/journal.ts";
import { rollbackFromJournal } from "../../src/daemon/rollback.ts";
import { restoreGuard } from "../../src/daemon/restorable.ts";
import { TUNERS } from "../../src/tuners/registry.ts";
import type { SysctlIO } from "../../src/daemon/sysctl_io.ts";
import { inTempDir } from "../support/temp_dir.ts";
import { NetnsGoneError } from "../../src/kernel/netns.ts";

const RMEM = "net.ipv4.tcp_rmem";
const NS = "ns:4000000001";

function finding(over: Partial<Finding>): Finding {
  return {
    id: "BPFP-TCP-RMEM-MAX",
    severity: "warning",
    title: "t",
    tunable: RMEM,
    netns: NS,
    current: [4096, 16384, 65536],
    recommended: [4096, 16384, 81920],
    evidence: [],
    sysctlW: `sysctl -w ${RMEM}="4096 16384 81920"`,
    sources: ["observed"],
    ...over,
  };
}

function memoryIO(initial: Record<string, number[]>) {
  const values = new Map(Object.entries(initial));
  const writes: string[] = [];
  const io: SysctlIO = {
    read: (s, ns) => values.get(`${ns}|${s}`) ?? null,
    write: (s, ns, v) => {
      if (s === "net.core.somaxconn") throw new Error("Invalid argument: the kernel refused it");
      writes.push(`${ns}|${s}=${v.join(" ")}`);
      values.set(`${ns}|${s}`, [...v]);
    },
  };
  return { io, values, writes };
}

const quiet = {
  debugEnabled: false,
  error() {},
  warn() {},
  notice() {},
  info() {},
  debug() {},
};

const withDir = (body: (dir: string) => Promise<void>) => inTempDir("bpfp-apply-", body);

Deno.test("finding netns names map back to namespace keys", () => {
  assert.equal(findingNetnsKey("host"), "global");
  assert.equal(findingNetnsKey("ns:123"), "ns:123");
  assert.equal(findingNetnsKey("no-such-netns-bpfp"), null);
  assert.equal(findingNetnsKey("/proc/self/ns/net"), "global");
});

Deno.test(
  "--apply writes through the journal: original first, then the value; rollback restores it",
  withDir(async (dir) => {
    const { io, values, writes } = memoryIO({
      [`${NS}|${RMEM}`]: [4096, 16384, 65536],
      "global|net.ipv4.tcp_wmem": [4096, 16384, 4194304],
    });
    const cookies = (key: string) => key === NS ? 4242n : null;
    const hook = journalApplyHook({ stateDir: dir, io, netnsCookie: cookies });
    const out = await hook([
      finding({}),
      finding({
        id: "BPFP-TCP-WMEM-MAX",
        tunable: "net.ipv4.tcp_wmem",
        netns: "host",
        current: [4096, 16384, 4194304],
        recommended: [4096, 16384, 4194304],
      }),
    ]);
    assert.deepEqual(out.map((o) => [o.id, o.applied]), [
      ["BPFP-TCP-RMEM-MAX", true],
      ["BPFP-TCP-WMEM-MAX", true],
    ]);
    assert.match(
      out[0].message,
      new RegExp(
        `set to 4096 16384 81920 \\(was 4096 16384 65536\\); 'bpfpilot rollback --state-dir ${dir}' restores it`,
      ),
    );
    assert.equal(out[1].message, "already at the recommended value");
    assert.deepEqual(writes, [`${NS}|${RMEM}=4096 16384 81920`], "only the one that differs");

    const journal = Journal.open(dir);
    const [entry] = journal.changedEntries();
    assert.deepEqual(
      [entry.netns, entry.sysctl, entry.tuner, entry.original, entry.lastWritten, entry.pending],
      [NS, RMEM, "audit", [4096, 16384, 65536], [4096, 16384, 81920], null],
    );
    assert.equal(entry.netnsCookie, "4242", "the namespace's cookie, as the daemon records it");
    assert.equal(Journal.daemonPid(dir), null, "the apply released the state directory");
    const r = rollbackFromJournal(journal, io, quiet, restoreGuard(TUNERS));
    assert.equal(r.restored.length, 1);
    assert.deepEqual(values.get(`${NS}|${RMEM}`), [4096, 16384, 65536]);
    assert.deepEqual(journal.changedEntries(), []);
    journal.close();
  }),
);

Deno.test(
  "--apply refuses, per finding and with the reason: moved values, other namespaces, kernel errors; writes hex masks in hex",
  withDir(async (dir) => {
    const { io, writes } = memoryIO({
      [`${NS}|${RMEM}`]: [4096, 16384, 70000], // changed since the audit read it
      "global|net.core.somaxconn": [4096],
      "global|net.core.flow_limit_cpu_bitmap": [0],
    });
    const hook = journalApplyHook({ stateDir: dir, io, onlyNetns: "global" });
    const out = await hook([
      finding({ netns: "host" }), // absent on "host" in this fake
      finding({}),
      finding({
        id: "BPFP-TCP-LISTEN-OVERFLOW",
        tunable: "net.core.somaxconn",
        netns: "host",
        current: [4096],
        recommended: [8192],
      }),
      finding({
        id: "BPFP-NETDEV-FLOW-LIMIT",
        tunable: "net.core.flow_limit_cpu_bitmap",
        netns: "host",
        current: [0],
        recommended: [1024], // CPU 10: the kernel reads "400"
        sysctlW: "sysctl -w net.core.flow_limit_cpu_bitmap=400",
      }),
      finding({ netns: "no-such-netns-bpfp" }),
    ]);
    assert.deepEqual(out.map((o) => o.applied), [false, false, false, true, false]);
    assert.match(out[0].message, /cannot be read now/);
    assert.match(out[1].message, /outside the namespace given with --netns/);
    assert.match(out[2].message, /could not write net\.core\.somaxconn: Invalid argument/);
    assert.match(out[3].message, /set to 400 \(was 0\)/);
    assert.match(out[4].message, /no longer exists/);
    assert.deepEqual(writes, ["global|net.core.flow_limit_cpu_bitmap=1024"]);

    const moved = await journalApplyHook({ stateDir: dir, io })([finding({})]);
    assert.match(moved[0].message, /changed since the audit read it \(now 4096 16384 70000/);
    assert.equal(moved[0].applied, false);
  }),
);

Deno.test(
  "--apply refuses while a daemon holds the state directory, changing nothing",
  withDir(async (dir) => {
    const daemon = Journal.open(dir);
    daemon.claimDaemon();
    try {
      const { io, writes } = memoryIO({ [`${NS}|${RMEM}`]: [4096, 16384, 65536] });
      await assert.rejects(
        () => journalApplyHook({ stateDir: dir, io })([finding({})]),
        new RegExp(
          `a bpfpilot daemon \\(pid ${Deno.pid}\\) is running with state directory ${dir}.*` +
            "stop it \\(systemctl stop bpfpilot\\) and run the audit with --apply again",
        ),
      );
      assert.deepEqual(writes, []);
      assert.deepEqual(daemon.changedEntries(), []);
    } finally {
      daemon.close();
    }
  }),
);

Deno.test(
  "--apply in a namespace that cannot be identified now: nothing recorded, nothing written",
  withDir(async (dir) => {
    const { io, writes } = memoryIO({ [`${NS}|${RMEM}`]: [4096, 16384, 65536] });
    let cookie: bigint | undefined = undefined; // no path leads to it at the moment
    const hook = journalApplyHook({ stateDir: dir, io, netnsCookie: () => cookie });
    const [out] = await hook([finding({})]);
    assert.equal(out.applied, false);
    assert.match(out.message, /could not write .*no known path leads to it.*nothing written/);
    assert.deepEqual(writes, []);
    const journal = Journal.open(dir);
    assert.deepEqual(journal.changedEntries(), [], "no record that may name a dead namespace");
    journal.close();
    cookie = 4242n; // identified again: the next run applies it
    const [again] = await hook([finding({})]);
    assert.equal(again.applied, true);
  }),
);

Deno.test(
  "--apply: a write refused because the namespace is gone leaves no entry behind",
  withDir(async (dir) => {
    const { io, writes } = memoryIO({ [`${NS}|${RMEM}`]: [4096, 16384, 65536] });
    io.write = () => {
      throw new NetnsGoneError(NS);
    };
    const hook = journalApplyHook({ stateDir: dir, io, netnsCookie: () => 4242n });
    const [out] = await hook([finding({})]);
    assert.equal(out.applied, false);
    assert.deepEqual(writes, []);
    const journal = Journal.open(dir);
    assert.deepEqual(journal.changedEntries(), [], "the entry made for the write is dropped");
    journal.close();
  }),
);
