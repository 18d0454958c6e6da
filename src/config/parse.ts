/**
 * bpfpilot.conf: TOML (parsed by smol-toml), checked against the daemon's flags (options.ts),
 * the tuners and the sysctls they manage. Every problem carries the line it is on; a file with
 * problems is not used (the daemon refuses to start with it, a reload keeps the previous one).
 *
 *   learning-rate = 2                       # any run flag, spelled as its long name
 *   disable = ["route_table"]
 *   [tuner.neigh_table]
 *   policy = "advise-only"                  # tune (default) | advise-only | disabled
 *   [sysctl."net.ipv4.tcp_rmem"]
 *   ceiling = [4096, 131072, 16777216]      # one number, or one per field
 */
import { parse, TomlError } from "smol-toml";
import { parseLearningRate } from "../tuning/learning_rate.ts";
import { DEFAULT_DOMAIN, type ValueDomain } from "../tuning/domain.ts";
import { normalizeTunerName } from "../tuning/names.ts";
import { parseListenAddress } from "../daemon/metrics.ts";
import { parseCooldown } from "../cli/run_paths.ts";
import { type ConfigKey, configKeys } from "./options.ts";
import { KeyLines } from "./locate.ts";
import { didYouMean } from "./suggest.ts";

export const POLICIES = ["tune", "advise-only", "disabled"] as const;
export type PolicyName = typeof POLICIES[number];

export interface TunerRule {
  policy: PolicyName;
  line: number | null;
}

export interface SysctlRule {
  policy: PolicyName;
  /** Growth stops here, per field (null: no ceiling). */
  ceiling: number[] | null;
  line: number | null;
}

export interface ConfigProblem {
  line: number | null;
  message: string;
}

export interface ParsedConfig {
  /** RunFlags fields the file sets, as the command line would give them. */
  settings: Record<string, unknown>;
  /** Line of each setting, by attribute name. */
  lines: Record<string, number | null>;
  tuners: Map<string, TunerRule>;
  sysctls: Map<string, SysctlRule>;
  problems: ConfigProblem[];
}

/** What the checks need to know of the tuners (the registry's TUNERS fit). */
export interface TunerCatalogue {
  readonly name: string;
  /** Changes connections rather than sysctls (tcp_conn). */
  readonly tunesConnections?: boolean;
  readonly tunables: readonly { sysctl: string; values: number; domain?: ValueDomain }[];
}

/** The largest file read: a configuration is a few hundred bytes. */
export const MAX_CONFIG_BYTES = 256 * 1024;

const SECTIONS = ["tuner", "sysctl"] as const;

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v === null || v === undefined) return "nothing";
  if (typeof v === "object") return v instanceof Date ? "a date" : "a table";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a number";
  return `a ${typeof v}`;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function messageOf(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/^--[\w-]+:? /, "");
}

/** Value checks beyond the type, by attribute: the same parsers the daemon's flags go through. */
const VALUE_CHECKS: Record<string, (v: string) => void> = {
  learningRate: (v) => parseLearningRate(v),
  cooldown: (v) => parseCooldown(v),
  metricsListen: (v) => parseListenAddress(v, { allowNonLoopback: true }),
  stateDir: absolutePath,
  controlSocket: absolutePath,
  cgroup: absolutePath,
  netns: (v) => {
    if (v === "") throw new Error("give a name from 'ip netns list' or a path");
  },
  controlGroup: (v) => {
    if (v === "") throw new Error("give a group name or gid");
  },
};

function absolutePath(v: string): void {
  if (!v.startsWith("/")) throw new Error(`'${v}' is not an absolute path`);
}

export function parseConfig(text: string, catalogue: readonly TunerCatalogue[]): ParsedConfig {
  const out: ParsedConfig = {
    settings: {},
    lines: {},
    tuners: new Map(),
    sysctls: new Map(),
    problems: [],
  };
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (e) {
    const line = e instanceof TomlError ? e.line : null;
    const first = messageOf(e).split("\n")[0].replace(/^Invalid TOML document: /, "");
    out.problems.push({ line, message: `not valid TOML: ${first}` });
    return out;
  }
  const lines = new KeyLines(text);
  const problem = (path: string[], message: string) =>
    out.problems.push({ line: lines.lineOf(path), message });
  const ctx: Context = { catalogue, out, lines, problem };
  const keys = configKeys();
  const byKey = new Map(keys.map((k) => [k.key, k]));
  const known = [...keys.map((k) => k.key), ...SECTIONS];
  for (const [name, value] of Object.entries(doc)) {
    if (name === "tuner" || name === "sysctl") {
      if (!isTable(value)) {
        problem([name], `'${name}' must be a table ([${name}.<name>]), not ${typeName(value)}`);
      } else if (name === "tuner") readTuners(value, ctx);
      else readSysctls(value, ctx);
      continue;
    }
    const key = byKey.get(name);
    if (!key) {
      problem([name], `unknown key '${name}'${didYouMean(name, known)}`);
      continue;
    }
    const v = readSetting(key, value, catalogue);
    if (typeof v === "object" && v !== null && "error" in v) {
      problem([name], `${name}: ${v.error}`);
      continue;
    }
    out.settings[key.attribute] = v;
    out.lines[key.attribute] = lines.lineOf([name]);
  }
  return out;
}

type Setting = string | boolean | string[] | { error: string };

function readSetting(
  key: ConfigKey,
  value: unknown,
  catalogue: readonly TunerCatalogue[],
): Setting {
  const kind = key.value;
  if (kind.type === "boolean") {
    return typeof value === "boolean"
      ? value
      : { error: `must be true or false, not ${typeName(value)}` };
  }
  if (kind.type === "list") {
    const list = typeof value === "string" ? [value] : value;
    if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
      return { error: `must be an array of tuner names, not ${typeName(value)}` };
    }
    const names = catalogue.map((t) => t.name);
    for (const raw of list) {
      const name = normalizeTunerName(raw);
      if (!names.includes(name)) {
        return {
          error: `unknown tuner '${raw}'${didYouMean(name, names)}; known: ${names.join(", ")}`,
        };
      }
    }
    return list;
  }
  if (value === false && kind.negatable) return false as unknown as string;
  if (typeof value !== "string" && typeof value !== "number") {
    const what = kind.negatable
      ? "a string or false"
      : kind.choices
      ? "a string"
      : "a string or a number";
    return { error: `must be ${what}, not ${typeName(value)}` };
  }
  const text = String(value);
  if (kind.choices && !kind.choices.includes(text)) {
    return { error: `'${text}' is not one of ${kind.choices.map((c) => `'${c}'`).join(", ")}` };
  }
  try {
    VALUE_CHECKS[key.attribute]?.(text);
  } catch (e) {
    return { error: messageOf(e) };
  }
  return text;
}

type Report = (path: string[], message: string) => void;

interface Context {
  catalogue: readonly TunerCatalogue[];
  out: ParsedConfig;
  lines: KeyLines;
  problem: Report;
}

function readPolicy(path: string[], value: unknown, problem: Report): PolicyName | null {
  if (typeof value === "string" && (POLICIES as readonly string[]).includes(value)) {
    return value as PolicyName;
  }
  problem(
    path,
    `${path.join(".")}: policy must be one of ${POLICIES.map((p) => `"${p}"`).join(", ")}, not ` +
      (typeof value === "string" ? `"${value}"${didYouMean(value, POLICIES)}` : typeName(value)),
  );
  return null;
}

function readTuners(table: Record<string, unknown>, ctx: Context): void {
  const { catalogue, out, problem } = ctx;
  const names = catalogue.map((t) => t.name);
  for (const [raw, body] of Object.entries(table)) {
    const name = normalizeTunerName(raw);
    const path = ["tuner", raw];
    if (!names.includes(name)) {
      problem(path, `unknown tuner '${raw}'${didYouMean(name, names)}; known: ${names.join(", ")}`);
      continue;
    }
    if (!isTable(body)) {
      problem(path, `tuner.${raw} must be a table ([tuner.${raw}]), not ${typeName(body)}`);
      continue;
    }
    let policy: PolicyName = "tune";
    for (const [k, v] of Object.entries(body)) {
      if (k === "policy") policy = readPolicy([...path, k], v, problem) ?? policy;
      else {problem(
          [...path, k],
          `unknown key '${k}' in [tuner.${raw}]${didYouMean(k, ["policy"])}`,
        );}
    }
    const def = catalogue.find((t) => t.name === name)!;
    if (def.tunables.length === 0 && !def.tunesConnections && policy !== "tune") {
      problem(
        path,
        `tuner ${name} changes nothing itself (it notices the administrator's writes), so it ` +
          `takes no policy; disable = ["${name}"] turns it off`,
      );
    }
    out.tuners.set(name, { policy, line: ctx.lines.lineOf(path) });
  }
}

function readSysctls(table: Record<string, unknown>, ctx: Context): void {
  const { catalogue, out, problem } = ctx;
  const tunables = new Map(catalogue.flatMap((t) => t.tunables.map((x) => [x.sysctl, x] as const)));
  const names = [...tunables.keys()];
  for (const [raw, body] of Object.entries(table)) {
    const name = raw.replace(/\//g, ".");
    const path = ["sysctl", raw];
    const decl = tunables.get(name);
    if (!decl) {
      problem(
        path,
        `unknown sysctl '${raw}'${didYouMean(name, names)}: bpfpilot tunes only ${
          names.join(", ")
        }`,
      );
      continue;
    }
    if (!isTable(body)) {
      problem(path, `sysctl."${raw}" must be a table ([sysctl."${raw}"]), not ${typeName(body)}`);
      continue;
    }
    let policy: PolicyName = "tune";
    let ceiling: number[] | null = null;
    for (const [k, v] of Object.entries(body)) {
      if (k === "policy") policy = readPolicy([...path, k], v, problem) ?? policy;
      else if (k === "ceiling") ceiling = readCeiling([...path, k], decl, v, problem);
      else {
        problem(
          [...path, k],
          `unknown key '${k}' in [sysctl."${raw}"]${didYouMean(k, ["policy", "ceiling"])}`,
        );
      }
    }
    out.sysctls.set(name, { policy, ceiling, line: ctx.lines.lineOf(path) });
  }
}

function readCeiling(
  path: string[],
  decl: TunerCatalogue["tunables"][number],
  value: unknown,
  problem: Report,
): number[] | null {
  const domain = decl.domain ?? DEFAULT_DOMAIN;
  const fields = decl.values;
  const list = typeof value === "number" ? Array(fields).fill(value) : value;
  const shape = fields === 1 ? "an integer" : `an integer or an array of ${fields} integers`;
  if (!Array.isArray(list) || !list.every((x) => typeof x === "number")) {
    problem(path, `${decl.sysctl}: ceiling must be ${shape}, not ${typeName(value)}`);
    return null;
  }
  if (list.length !== fields) {
    problem(
      path,
      `${decl.sysctl}: ceiling has ${list.length} value(s) but the sysctl holds ${fields}`,
    );
    return null;
  }
  const bad = list.find((x) => !Number.isSafeInteger(x) || x < domain.min || x > domain.max);
  if (bad !== undefined) {
    problem(
      path,
      `${decl.sysctl}: ceiling ${bad} is outside the values it takes (${domain.min} to ` +
        `${domain.max})`,
    );
    return null;
  }
  return list as number[];
}
