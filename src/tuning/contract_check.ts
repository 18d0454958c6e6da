/**
 * Checks that a tuner's TypeScript side and its compiled BPF object agree: the generated contract
 * module the tuner imports against the object's BTF (tuner id, event kinds, payload offsets and
 * sizes, parameter and config offsets), the definition's name and id, the shared event header
 * and rate-limiter map layouts, and every hook candidate's program and section target. Needs no kernel and no root.
 */
import { type Contract, extractContract } from "./contract.ts";
import { EVENT_LAYOUT, EVENT_SIZE } from "./event.ts";
import { RL_KEY_LAYOUT, RL_KEY_SIZE, RL_VALUE_LAYOUT, RL_VALUE_SIZE } from "./rate_limit.ts";
import type { TunerDefinition } from "./tuner.ts";
import type { HookCandidate } from "../kernel/hooks.ts";

/** The ELF sections (SEC() strings) a candidate's program may be in. */
export function sectionsFor(c: Pick<HookCandidate, "kind" | "target">): string[] {
  switch (c.kind) {
    case "tp_btf":
      return [`tp_btf/${c.target}`];
    case "tracepoint":
      return [`tp/${c.target}`, `tracepoint/${c.target}`];
    case "raw_tp":
      return [`raw_tp/${c.target}`, `raw_tracepoint/${c.target}`];
    case "fentry":
      return [`fentry/${c.target}`];
    case "kprobe":
      return [`kprobe/${c.target}`];
    case "cgroup":
      return c.target === "sockops" ? ["sockops"] : [`cgroup/${c.target}`];
    default:
      return [`${c.kind}/${c.target}`, c.kind];
  }
}

/** Paths where `a` and `b` differ, as "path: a vs b" lines. */
function differences(a: unknown, b: unknown, path: string): string[] {
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) =>
      differences(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        path ? `${path}.${k}` : k,
      )
    );
  }
  return a === b ? [] : [`${path}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`];
}

/**
 * Every disagreement between `def` (with the contract module it was built against) and its
 * object, one message each; empty when they agree.
 */
export function checkTunerContract(
  def: Pick<TunerDefinition, "name" | "id" | "hooks" | "object" | "contract">,
): string[] {
  const errors: string[] = [];
  if (!def.object) {
    return def.hooks.length ? [`${def.name}: hooks declared but no BPF object`] : [];
  }
  if (!def.contract) return [`${def.name}: no contract (set contract: from its .contract.ts)`];
  let object: Contract;
  try {
    object = extractContract(def.object);
  } catch (e) {
    return [`${def.name}: ${(e as Error).message}`];
  }
  const declared = def.contract;
  for (const d of differences(declared, object, "")) {
    errors.push(`${def.name}: the TypeScript contract and the object differ at ${d}`);
  }
  if (def.name !== object.tuner) {
    errors.push(`${def.name}: the object's BPFP_CONTRACT names tuner '${object.tuner}'`);
  }
  if (def.id !== object.id) {
    errors.push(`${def.name}: definition id ${def.id}, object's BPFP_CONTRACT id ${object.id}`);
  }
  for (const d of differences(EVENT_LAYOUT, object.event, "event")) {
    errors.push(`${def.name}: struct bpfp_event differs from src/tuning/event.ts at ${d}`);
  }
  if (object.eventSize !== EVENT_SIZE) {
    errors.push(
      `${def.name}: struct bpfp_event is ${object.eventSize} bytes, event.ts reads ${EVENT_SIZE}`,
    );
  }
  const rateLimit = {
    key: RL_KEY_LAYOUT,
    keySize: RL_KEY_SIZE,
    value: RL_VALUE_LAYOUT,
    valueSize: RL_VALUE_SIZE,
  };
  for (const d of differences(rateLimit, object.rateLimit, "rateLimit")) {
    errors.push(
      `${def.name}: the rate limiter's map differs from src/tuning/rate_limit.ts at ${d}`,
    );
  }
  const used = new Set<string>();
  for (const hook of def.hooks) {
    for (const c of hook.candidates) {
      used.add(c.program);
      const section = object.programs[c.program];
      if (section === undefined) {
        errors.push(
          `${def.name}/${hook.name}: program ${c.program} (${c.kind}) is not in the object`,
        );
        continue;
      }
      const allowed = sectionsFor(c);
      if (!allowed.includes(section)) {
        errors.push(
          `${def.name}/${hook.name}: program ${c.program} is in section '${section}', but the hook ` +
            `declares ${c.kind} ${c.target} (expected '${allowed.join("' or '")}')`,
        );
      }
    }
  }
  for (const program of Object.keys(object.programs)) {
    if (!used.has(program)) {
      errors.push(`${def.name}: program ${program} is in the object but in no hook's chain`);
    }
  }
  return errors;
}
