/** The toy tuner's definition and glue (docs/adding-a-tuner.md); not in the shipped registry. */
import toyObject from "../../dist/bpf/toy.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/toy.contract.ts";
import { configBytes, readPayload } from "../../src/tuning/contract.ts";
import type { TunerDefinition } from "../../src/tuning/tuner.ts";
import type { LearningRate } from "../../src/tuning/learning_rate.ts";
import { netnsKey } from "../../src/kernel/netns.ts";
import { u32Key } from "../../src/libbpf/map.ts";
import { SOMAXCONN, somaxconnDecision, TOY_SCENARIOS, TOY_TUNABLES } from "./toy_rules.ts";

export const toyTuner: TunerDefinition = {
  name: contract.tuner,
  id: contract.id,
  description: "raises somaxconn when listen backlogs are capped by it",
  object: toyObject,
  contract,
  tunables: TOY_TUNABLES,
  scenarios: TOY_SCENARIOS,
  hooks: [{
    name: "listen",
    description: "sockets entering LISTEN",
    candidates: [
      { kind: "tp_btf", target: "inet_sock_set_state", program: "bpfp_toy_btf" },
      { kind: "tracepoint", target: "sock/inet_sock_set_state", program: "bpfp_toy_tp" },
    ],
  }],
  create: (ctx) => ({
    configure(obj) {
      obj.map("bpfp_config").update(u32Key(0), configBytes(contract, { min_backlog: 128 }));
    },
    onEvent(ev) {
      if (ev.kind !== contract.kinds.TOY_LISTEN) return;
      const netns = netnsKey(ev.netns);
      const live = ctx.read(SOMAXCONN, netns)?.[0];
      if (live === undefined) return;
      const { backlog } = readPayload(ev.data, contract.payload.listen);
      ctx.apply([somaxconnDecision(live, backlog, ctx.learningRate as LearningRate)], netns);
    },
  }),
};
