import assert from "node:assert/strict";
import { rollbackSummary } from "../../src/cli/state.ts";
import type { RollbackSkipCode } from "../../src/daemon/journal.ts";

const skip = (code: RollbackSkipCode) => ({
  netns: "ns:4026532999",
  sysctl: "net.ipv4.tcp_rmem",
  tuner: "tcp_buffer",
  code,
  reason: "",
});
const step = {
  netns: "global",
  sysctl: "net.core.rmem_max",
  tuner: "udp_buffer",
  from: [2],
  to: [1],
};

Deno.test("rollbackSummary: records kept for a later rollback are counted apart, not as left alone", () => {
  const line = rollbackSummary({
    restored: [step],
    skipped: [
      skip("at-original"),
      skip("changed"),
      skip("unreadable"),
      skip("unidentified"),
      skip("unidentified"),
      skip("refused"),
    ],
    failed: [],
  });
  assert.equal(
    line,
    "bpfpilot: restored 1 value(s), left 2 alone, kept 2 for a later rollback (namespace not " +
      "identified now), refused 1 not bpfpilot's",
  );
});

Deno.test("rollbackSummary: nothing but restores says only that", () => {
  assert.equal(
    rollbackSummary({ restored: [], skipped: [skip("at-original")], failed: [] }),
    "bpfpilot: restored 0 value(s)",
  );
  assert.equal(
    rollbackSummary({ restored: [], skipped: [], failed: [{ step, reason: "EPERM" }] }),
    "bpfpilot: restored 0 value(s), 1 failed",
  );
});
