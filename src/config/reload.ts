/**
 * The configuration at start and on SIGHUP. At start a broken file is a start error; on reload
 * it is logged and the running configuration stays (the daemon never stops or loses state over
 * it). Policy sections take effect at once; a changed setting that the daemon only reads at start
 * (cgroup, state directory, control socket...) is reported as needing a restart.
 */
import type { RunFlags } from "../cli/run_options.ts";
import type { LogLike } from "../tuning/tuner.ts";
import { type ConfigPolicy, type PolicyRules, startTimePolicy } from "../daemon/config_policy.ts";
import type { LoadedConfig } from "./file.ts";
import { ConfigInvalidError, type FlagSource, mergeSettings, selectConfig } from "./effective.ts";
import { configKeys } from "./options.ts";
import type { TunerCatalogue } from "./parse.ts";

export function policyRules(config: LoadedConfig | null): PolicyRules | null {
  return config && { path: config.path, tuners: config.tuners, sysctls: config.sysctls };
}

/** One line saying which file is in force. */
export function describeConfig(config: LoadedConfig | null, source: string): string {
  if (!config) return `no configuration file (${source})`;
  const n = config.tuners.size + config.sysctls.size;
  return `configuration file ${config.path}: ${Object.keys(config.settings).length} setting(s), ` +
    `${n} policy rule(s)`;
}

export interface ReloadDeps {
  /** The command line's flags (before the file was merged in) and where each came from. */
  given: RunFlags;
  sourceOf: FlagSource;
  /** The settings the daemon started with (flags over file). */
  running: RunFlags;
  policy: ConfigPolicy;
  /** The tuner rules the daemon started with (connection tuners' policy acts at start only). */
  startRules: Pick<PolicyRules, "tuners"> | null;
  log: LogLike;
  catalogue: readonly TunerCatalogue[];
}

function policyAtStart(p: ReturnType<typeof startTimePolicy>, tuner: string): string {
  return p.disabled.includes(tuner)
    ? "disabled"
    : p.advising.includes(tuner)
    ? "advise-only"
    : "tune";
}

function show(v: unknown): string {
  return v === undefined ? "the default" : Array.isArray(v) ? v.join(",") : String(v);
}

/** SIGHUP's work: never throws. */
export function reloadConfig(d: ReloadDeps): void {
  let config: LoadedConfig | null;
  try {
    config = selectConfig(d.given, d.catalogue);
  } catch (e) {
    const lines = e instanceof ConfigInvalidError ? e.lines : [(e as Error).message];
    for (const line of lines) d.log.error(line);
    d.log.error("configuration file not reloaded: the running configuration stays in force");
    return;
  }
  d.policy.replace(policyRules(config));
  const before = startTimePolicy(d.startRules, d.catalogue);
  const after = startTimePolicy(config, d.catalogue);
  for (const def of d.catalogue) {
    const was = policyAtStart(before, def.name), now = policyAtStart(after, def.name);
    if (was === now) continue;
    d.log.warn(
      `[tuner.${def.name}] policy changed to ${now} (running with ${was}): it changes ` +
        "connections, not sysctls, so this needs a restart to take effect",
    );
  }
  const { flags } = mergeSettings(d.given, d.sourceOf, config);
  const running = d.running as Record<string, unknown>, now = flags as Record<string, unknown>;
  for (const k of configKeys()) {
    const before = running[k.attribute], after = now[k.attribute];
    if (JSON.stringify(before) === JSON.stringify(after)) continue;
    d.log.warn(
      `${k.key} changed to ${show(after)} (running with ${show(before)}): needs a restart to ` +
        "take effect",
    );
  }
  d.log.info(`reloaded ${describeConfig(config, "none selected")}`);
}
