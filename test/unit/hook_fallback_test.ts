import assert from "node:assert/strict";
import {
  type ChainHook,
  type FallbackOps,
  FAULT,
  loadWithFallback,
  withFaults,
} from "../../src/kernel/hook_fallback.ts";

/** A fake kernel: programs it refuses to load, (hook, program) pairs it refuses to attach. */
class FakeKernel {
  loads: string[][] = [];
  attached: string[] = [];
  open = 0;
  constructor(
    readonly refuseLoad: Record<string, string> = {},
    readonly refuseAttach: Record<string, string> = {},
    readonly ruleOut: Record<string, string> = {},
  ) {}
  ops(): FallbackOps<{ id: number }, string> {
    return {
      program: (c) => c,
      rule: (c) => this.ruleOut[c] ?? null,
      load: (programs) => {
        this.loads.push([...programs]);
        this.open++;
        this.attached = [];
        const refused = programs.filter((p) => this.refuseLoad[p])
          .map((program) => ({ program, reason: this.refuseLoad[program] }));
        return { object: { id: this.loads.length }, refused };
      },
      attach: (_o, hook, c) => {
        if (this.refuseAttach[c]) throw new Error(this.refuseAttach[c]);
        this.attached.push(`${hook}=${c}`);
      },
      close: () => void this.open--,
    };
  }
}

const rcv: ChainHook<string> = {
  name: "rcv",
  optional: false,
  candidates: ["r_btf", "r_tp", "r_kp"],
};
const snd: ChainHook<string> = { name: "snd", optional: true, candidates: ["s_btf", "s_tp"] };

Deno.test("fallback: the first choice of every hook works: one load, everything attached", () => {
  const k = new FakeKernel();
  const r = loadWithFallback([rcv, snd], k.ops());
  assert.ok(r.ok);
  assert.deepEqual(r.chosen.map((c) => c.candidate), ["r_btf", "s_btf"]);
  assert.deepEqual(k.loads, [["r_btf", "s_btf"]]);
  assert.deepEqual(k.attached, ["rcv=r_btf", "snd=s_btf"]);
  assert.deepEqual(r.missing, []);
  assert.equal(k.open, 1, "the object stays open for the caller");
});

Deno.test("fallback: a program the kernel refuses to load moves its hook to the next candidate", () => {
  const k = new FakeKernel({ r_btf: "invalid mem access" });
  const r = loadWithFallback([rcv, snd], k.ops());
  assert.ok(r.ok);
  assert.deepEqual(k.loads, [["r_btf", "s_btf"], ["r_tp", "s_btf"]]);
  assert.deepEqual(r.chosen.map((c) => c.candidate), ["r_tp", "s_btf"]);
  assert.deepEqual(r.refused, [
    { hook: "rcv", program: "r_btf", stage: "load", reason: "invalid mem access" },
  ]);
  assert.equal(k.open, 1, "the refused load was closed");
});

Deno.test("fallback: a refused attach reloads with the hook's next candidate", () => {
  const k = new FakeKernel({}, { s_btf: "EPERM" });
  const r = loadWithFallback([rcv, snd], k.ops());
  assert.ok(r.ok);
  assert.deepEqual(k.loads, [["r_btf", "s_btf"], ["r_btf", "s_tp"]]);
  assert.deepEqual(k.attached, ["rcv=r_btf", "snd=s_tp"]);
  assert.equal(r.refused[0].stage, "attach");
  assert.equal(k.open, 1, "the first object (and its attachments) was released");
});

Deno.test("fallback: a candidate the rule excludes is never loaded", () => {
  const k = new FakeKernel({}, {}, { r_btf: "tp_btf: no BTF" });
  const r = loadWithFallback([rcv], k.ops());
  assert.ok(r.ok);
  assert.deepEqual(k.loads, [["r_tp"]]);
  assert.deepEqual(r.refused, [{
    hook: "rcv",
    program: "r_btf",
    stage: "rule",
    reason: "tp_btf: no BTF",
  }]);
});

Deno.test("fallback: an optional hook whose chain runs out is left out; the rest runs", () => {
  const k = new FakeKernel({ s_btf: "refused" }, { s_tp: "no attach" });
  const r = loadWithFallback([rcv, snd], k.ops());
  assert.ok(r.ok);
  assert.deepEqual(r.chosen.map((c) => c.hook), ["rcv"]);
  assert.deepEqual(r.missing, [{ hook: "snd", reason: "no attach" }]);
  assert.deepEqual(k.loads.at(-1), ["r_btf"]);
  assert.equal(k.open, 1);
});

Deno.test("fallback: an optional hook the rule rules out entirely is missing before any load", () => {
  const k = new FakeKernel({}, {}, { s_btf: "a", s_tp: "b" });
  const r = loadWithFallback([rcv, snd], k.ops());
  assert.ok(r.ok);
  assert.deepEqual(r.missing, [{ hook: "snd", reason: "a; b" }]);
  assert.deepEqual(k.loads, [["r_btf"]]);
});

Deno.test("fallback: a required hook whose chain runs out makes it unavailable, with the reason", () => {
  const k = new FakeKernel({ r_btf: "x", r_tp: "y", r_kp: "verifier: invalid access" });
  const r = loadWithFallback([rcv, snd], k.ops());
  assert.ok(!r.ok);
  assert.equal(r.reason, "hook rcv: verifier: invalid access");
  assert.equal(r.refused.length, 3);
  assert.equal(k.open, 0, "nothing stays open");
  const ruled = loadWithFallback(
    [rcv],
    new FakeKernel({}, {}, { r_btf: "a", r_tp: "b", r_kp: "c" }).ops(),
  );
  assert.ok(!ruled.ok);
  assert.equal(ruled.reason, "hook rcv cannot attach on this kernel (a; b; c)");
});

Deno.test("fallback: an object that cannot load at all is unavailable at once", () => {
  const k = new FakeKernel();
  const ops = {
    ...k.ops(),
    load: () => {
      throw new Error("bad ELF");
    },
  };
  const r = loadWithFallback([rcv], ops);
  assert.ok(!r.ok);
  assert.equal(r.reason, "BPF object failed to load: bad ELF");
});

Deno.test("fallback: a failing prepare (configuration) releases the object", () => {
  const k = new FakeKernel();
  const ops = {
    ...k.ops(),
    prepare: () => {
      throw new Error("map full");
    },
  };
  const r = loadWithFallback([rcv], ops);
  assert.ok(!r.ok);
  assert.equal(r.reason, "configuring failed: map full");
  assert.equal(k.open, 0);
});

Deno.test("fault injection: program:<name> fails that load, <tuner>:<hook> every attach of the hook", () => {
  const k = new FakeKernel();
  const r = loadWithFallback(
    [rcv, snd],
    withFaults(k.ops(), new Set(["program:r_btf", "t:snd"]), "t"),
  );
  assert.ok(r.ok);
  assert.deepEqual(r.chosen.map((c) => c.candidate), ["r_tp"]);
  assert.deepEqual(r.missing, [{ hook: "snd", reason: FAULT }]);
  const req = loadWithFallback([rcv], withFaults(new FakeKernel().ops(), new Set(["t:rcv"]), "t"));
  assert.ok(!req.ok);
  assert.match(req.reason, /^hook rcv: fault injected/);
  const other = loadWithFallback(
    [rcv],
    withFaults(new FakeKernel().ops(), new Set(["u:rcv"]), "t"),
  );
  assert.ok(other.ok, "another tuner's fault does not apply");
});
