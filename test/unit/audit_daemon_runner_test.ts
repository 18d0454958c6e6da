/**
 * The advise runner's bookkeeping: repeated proposals counted per distinct change (the daemon
 * coalesces repeats, so they are counted before it), proposals outside --netns dropped, and
 * namespaces named the way findings show them.
 */
import assert from "node:assert/strict";
import { auditNetnsName, ProposalCollector } from "../../src/audit/daemon_runner.ts";
import type { Proposal } from "../../src/tuning/proposal.ts";

const NS = "ns:4000000001";

function proposal(over: Partial<Proposal>): Proposal {
  return {
    tuner: "tcp_buffer",
    scenario: "need to increase TCP buffer size(s)",
    sysctl: "net.ipv4.tcp_rmem",
    netns: NS,
    from: [4096, 16384, 65536],
    to: [4096, 16384, 81920],
    reason: "Due to ...",
    ...over,
  };
}

Deno.test("namespaces are named as findings show them", () => {
  assert.equal(auditNetnsName("global"), "host");
  assert.equal(auditNetnsName(NS), NS); // no such namespace: its key
});

Deno.test("collector: a change counts every time a tuner wanted it, once it went through", () => {
  const c = new ProposalCollector();
  c.add(proposal({}), false); // refused (e.g. cooling down) before it ever went through
  c.add(proposal({}), true);
  c.add(proposal({}), false); // coalesced duplicates
  c.add(proposal({}), false);
  c.add(proposal({ sysctl: "net.ipv4.tcp_wmem" }), false); // never went through
  c.add(
    proposal({ netns: "global", sysctl: "net.ipv4.tcp_mem", from: [1, 2, 3], to: [1, 2, 4] }),
    true,
  );
  const got = c.proposals().map((p) => [p.sysctl, p.netns, p.count, p.to.join(" ")]);
  assert.deepEqual(got, [
    ["net.ipv4.tcp_rmem", NS, 3, "4096 16384 81920"],
    ["net.ipv4.tcp_mem", "host", 1, "1 2 4"],
  ]);
});

Deno.test("collector: with --netns, proposals for other namespaces (the host's too) are left out", () => {
  const c = new ProposalCollector(NS);
  c.add(
    proposal({ netns: "global", sysctl: "net.ipv4.tcp_mem", from: [1, 2, 3], to: [1, 2, 4] }),
    true,
  );
  c.add(proposal({ netns: "ns:4000000009" }), true);
  c.add(proposal({}), true);
  assert.deepEqual(c.proposals().map((p) => p.netns), [NS]);
});
