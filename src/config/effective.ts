/**
 * The settings a daemon runs with: its flags over its configuration file over the built-in
 * defaults. Which file: --config PATH (must exist), --no-config (none), else the default file if
 * it exists.
 */
import { DEFAULT_CONFIG_FILE, type RunFlags } from "../cli/run_options.ts";
import { ConfigFileError, loadConfig, type LoadedConfig, problemLines } from "./file.ts";
import type { TunerCatalogue } from "./parse.ts";
import { configKeys } from "./options.ts";

/** Where a flag's value came from, as commander tells it (`cli`, `default`, `env`...). */
export type FlagSource = (attribute: string) => string | undefined;

export type SettingSource = "flag" | "file" | "default";

/** The file these flags name, whether it must exist, or null for --no-config. */
export function configFileOf(
  flags: Pick<RunFlags, "config">,
): { path: string; required: boolean } | null {
  if (flags.config === false) return null;
  if (typeof flags.config === "string") return { path: flags.config, required: true };
  return { path: DEFAULT_CONFIG_FILE, required: false };
}

export class ConfigInvalidError extends Error {
  constructor(readonly lines: string[], path: string) {
    super(
      `${lines.join("\n")}\nconfiguration file ${path} has ${lines.length} problem(s); fix ` +
        `them (bpfpilot config check ${path}) or start with --no-config`,
    );
    this.name = "ConfigInvalidError";
  }
}

/**
 * The configuration these flags select, checked: null when there is none. Throws
 * ConfigFileError (unreadable, unsafe, or a named file missing) or ConfigInvalidError.
 */
export function selectConfig(
  flags: Pick<RunFlags, "config">,
  catalogue: readonly TunerCatalogue[],
): LoadedConfig | null {
  const which = configFileOf(flags);
  if (which === null) return null;
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig(which.path, catalogue);
  } catch (e) {
    if (e instanceof ConfigFileError && e.missing && !which.required) return null;
    throw e;
  }
  if (loaded.problems.length) throw new ConfigInvalidError(problemLines(loaded), loaded.path);
  return loaded;
}

/** Flags given on the command line win; then the file; then commander's defaults. */
export function mergeSettings(
  flags: RunFlags,
  sourceOf: FlagSource,
  config: Pick<LoadedConfig, "settings"> | null,
): { flags: RunFlags; sources: Record<string, SettingSource> } {
  const merged: Record<string, unknown> = { ...flags };
  const sources: Record<string, SettingSource> = {};
  for (const { attribute } of configKeys()) {
    const given = sourceOf(attribute);
    if (given !== undefined && given !== "default" && given !== "implied") {
      sources[attribute] = "flag";
    } else if (config && attribute in config.settings) {
      merged[attribute] = config.settings[attribute];
      sources[attribute] = "file";
    } else sources[attribute] = "default";
  }
  return { flags: merged as RunFlags, sources };
}
