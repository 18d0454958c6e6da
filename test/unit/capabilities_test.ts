import assert from "node:assert/strict";
import {
  CAP_CHOWN,
  capabilityNames,
  KEPT_CAPABILITIES,
  keptMask,
  parseCapabilities,
} from "../../src/kernel/capabilities.ts";

Deno.test("capabilities: /proc status Cap* lines parse into masks", () => {
  const caps = parseCapabilities(
    "Name:\tbpfpilot\nCapInh:\t0000000000000000\nCapPrm:\t000000c000201002\n" +
      "CapEff:\t000000c000201002\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n",
  );
  assert.equal(caps.permitted, 0xc000201002n);
  assert.equal(caps.effective, caps.permitted);
  assert.equal(caps.bounding, 0x1fffeffffffn);
  assert.equal(caps.inheritable, 0n);
});

Deno.test("capabilities: the kept set, flag extras and names", () => {
  const base = keptMask();
  assert.deepEqual(capabilityNames(base), [
    "CAP_DAC_OVERRIDE",
    "CAP_NET_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_SYS_ADMIN",
    "CAP_PERFMON",
    "CAP_BPF",
  ]);
  assert.equal(KEPT_CAPABILITIES.every((c) => c.why.length > 10), true, "each says why");
  assert.equal(keptMask([CAP_CHOWN]), base | 1n);
  assert.deepEqual(capabilityNames(1n << 24n), ["cap_24"]);
});
