import assert from "node:assert/strict";
import type { HookCandidate, HookDecl, TryResult } from "../../src/kernel/hooks.ts";
import {
  chooseHooks,
  fingerprint,
  type KernelFeatures,
  type Prober,
  supportLevel,
  type TunerHooks,
} from "../../src/kernel/probe.ts";
import { tracepointChain } from "../../src/tuning/hook_chains.ts";

/** A kernel described by which kinds work; every call is recorded. */
class FakeProber implements Prober {
  calls: string[] = [];
  constructor(private works: Set<string>, private feats: Partial<KernelFeatures> = {}) {}
  features(): KernelFeatures {
    return {
      release: "fake",
      btf: true,
      ringbuf: true,
      percpuLookupHelper: true,
      netnsCookie: true,
      tracefs: "mounted",
      kprobes: true,
      cgroup2: "/sys/fs/cgroup",
      ...this.feats,
    };
  }
  tryCandidate(c: HookCandidate): TryResult {
    this.calls.push(`${c.kind}:${c.target}`);
    const ok = this.works.has(c.kind);
    return { kind: c.kind, target: c.target, ok, reason: ok ? "attached" : `${c.kind} broken` };
  }
}

const rcv = tracepointChain({
  name: "rcvbuf",
  description: "",
  tracepoint: "tcp/tcp_rcv_space_adjust",
  func: "tcp_rcv_space_adjust",
  prefix: "p_rcv",
});
const opt: HookDecl = { ...rcv, name: "extra", optional: true };
const tuners: TunerHooks[] = [{ tuner: "tcp_buffer", hooks: [rcv, opt] }];

Deno.test("the first working kind wins and later kinds are not tried", () => {
  const p = new FakeProber(new Set(["tp_btf", "tracepoint"]));
  const [c] = chooseHooks(tuners, p);
  assert.equal(c.chosen, "tp_btf");
  assert.equal(c.program, "p_rcv_btf");
  assert.deepEqual(c.tried.map((t) => t.kind), ["tp_btf"]);
});

Deno.test("fallback: this machine's kernel (fentry EPERM, no kprobes) with no BTF tracepoints", () => {
  const p = new FakeProber(new Set(["tracepoint"]));
  const [c] = chooseHooks(tuners, p);
  assert.equal(c.chosen, "tracepoint");
  assert.deepEqual(c.tried.map((t) => [t.kind, t.ok]), [["tp_btf", false], ["tracepoint", true]]);
  assert.equal(c.tried[0].reason, "tp_btf broken");
});

Deno.test("exhaustive mode records every kind's result for the support matrix", () => {
  const p = new FakeProber(new Set(["tp_btf", "tracepoint"]));
  const [c] = chooseHooks(tuners, p, false, true);
  assert.equal(c.chosen, "tp_btf");
  assert.deepEqual(c.tried.map((t) => t.ok), [true, true, false, false]);
});

Deno.test("legacy mode prefers the fallbacks: the chain is tried from its end", () => {
  const p = new FakeProber(new Set(["tp_btf", "fentry", "kprobe"]));
  const [c] = chooseHooks(tuners, p, true);
  assert.equal(c.chosen, "kprobe");
});

Deno.test("support level: full, legacy (fell back / optional missing), none", () => {
  const feats = new FakeProber(new Set()).features();
  const full = chooseHooks(tuners, new FakeProber(new Set(["tp_btf"])));
  assert.equal(supportLevel(full, tuners, feats), "full");
  const fellBack = chooseHooks(tuners, new FakeProber(new Set(["fentry"])));
  assert.equal(supportLevel(fellBack, tuners, feats), "legacy");
  const nothing = chooseHooks(tuners, new FakeProber(new Set()));
  assert.equal(supportLevel(nothing, tuners, feats), "none");
  assert.equal(supportLevel(full, tuners, { ...feats, ringbuf: false }), "none");
});

Deno.test("support level: one tuner unavailable while another runs is legacy, not none", () => {
  const two: TunerHooks[] = [
    { tuner: "a", hooks: [rcv] },
    {
      tuner: "b",
      hooks: [{
        name: "sy",
        description: "",
        candidates: [{ kind: "cgroup", target: "sysctl", program: "x" }],
      }],
    },
  ];
  const p = new FakeProber(new Set(["tp_btf"]));
  const choices = chooseHooks(two, p);
  assert.equal(choices[1].chosen, null);
  assert.equal(supportLevel(choices, two, p.features()), "legacy");
});

Deno.test("support level: an optional hook with a designed fallback (a poll) does not degrade it", () => {
  const feats = new FakeProber(new Set()).features();
  const polled: TunerHooks[] = [
    { tuner: "a", hooks: [rcv] },
    {
      tuner: "p",
      hooks: [{
        name: "frag",
        description: "",
        optional: true,
        fallback: "a poll of /proc",
        candidates: [{ kind: "fentry", target: "ip_defrag", program: "fe" }],
      }],
    },
  ];
  const choices = chooseHooks(polled, new FakeProber(new Set(["tp_btf"])));
  assert.equal(choices.find((c) => c.tuner === "p")!.chosen, null);
  assert.equal(supportLevel(choices, polled, feats), "full");
  const withoutFallback = polled.map((t) =>
    t.tuner === "p" ? { ...t, hooks: [{ ...t.hooks[0], fallback: undefined }] } : t
  );
  assert.equal(supportLevel(choices, withoutFallback, feats), "legacy");
});

Deno.test("probe cache fingerprint: one changed byte or length changes it", () => {
  const a = new Uint8Array(4096).map((_, i) => i * 7);
  const b = a.slice();
  b[2000] ^= 1;
  assert.equal(fingerprint(a), fingerprint(a.slice()));
  assert.notEqual(fingerprint(a), fingerprint(b));
  assert.notEqual(fingerprint(a), fingerprint(a.subarray(0, 4095)));
});
