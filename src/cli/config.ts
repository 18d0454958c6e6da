/** `bpfpilot config check` and `bpfpilot config show`: the configuration file from the CLI. */
import { Command } from "@commander-js/extra-typings";
import { TUNERS } from "../tuners/registry.ts";
import { ConfigFileError, loadConfig, type LoadedConfig, problemLines } from "../config/file.ts";
import {
  ConfigInvalidError,
  mergeSettings,
  selectConfig,
  type SettingSource,
} from "../config/effective.ts";
import { configKeys } from "../config/options.ts";
import { exampleConfig, tomlValue } from "../config/example.ts";
import { addRunOptions, DEFAULT_CONFIG_FILE, type RunFlags } from "./run_options.ts";
import { EXIT, UserError } from "./errors.ts";

function runCheck(path: string | undefined, json: boolean): number {
  const file = path ?? DEFAULT_CONFIG_FILE;
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig(file, TUNERS);
  } catch (e) {
    if (!(e instanceof ConfigFileError)) throw e;
    const fine = e.missing && path === undefined;
    const message = fine ? `${e.message}: bpfpilot runs with its built-in defaults` : e.message;
    if (json) {
      console.log(
        JSON.stringify(
          {
            file,
            valid: fine,
            exists: !e.missing,
            problems: fine ? [] : [{ line: null, message }],
          },
          null,
          2,
        ),
      );
    } else if (fine) console.log(`bpfpilot: ${message}`);
    else console.error(`bpfpilot: ${message}`);
    return fine ? EXIT.ok : EXIT.failure;
  }
  const valid = loaded.problems.length === 0;
  if (json) {
    console.log(JSON.stringify({ file, valid, exists: true, problems: loaded.problems }, null, 2));
  } else if (valid) {
    console.log(
      `${file}: valid (${Object.keys(loaded.settings).length} setting(s), ` +
        `${loaded.tuners.size + loaded.sysctls.size} policy rule(s))`,
    );
  } else {
    for (const line of problemLines(loaded)) console.error(line);
    console.error(`${file}: ${loaded.problems.length} problem(s)`);
  }
  return valid ? EXIT.ok : EXIT.failure;
}

const SOURCE_TEXT: Record<SettingSource, string> = {
  flag: "from a flag",
  file: "from the file",
  default: "default",
};

/** The effective configuration: the file's settings under the given flags, and the policy. */
export function effectiveConfig(given: RunFlags, sourceOf: (a: string) => string | undefined) {
  let config: LoadedConfig | null;
  try {
    config = selectConfig(given, TUNERS);
  } catch (e) {
    if (e instanceof ConfigFileError || e instanceof ConfigInvalidError) {
      throw new UserError(e.message);
    }
    throw e;
  }
  const { flags, sources } = mergeSettings(given, sourceOf, config);
  const values = flags as Record<string, unknown>;
  const settings = configKeys().map((k) => ({
    key: k.key,
    value: values[k.attribute] ?? null,
    source: sources[k.attribute],
  }));
  return {
    file: config?.path ?? null,
    settings,
    tuners: Object.fromEntries(
      [...config?.tuners ?? []].map(([name, r]) => [name, { policy: r.policy }]),
    ),
    sysctls: Object.fromEntries(
      [...config?.sysctls ?? []].map(([name, r]) => [name, {
        policy: r.policy,
        ...(r.ceiling ? { ceiling: r.ceiling } : {}),
      }]),
    ),
  };
}

function renderShow(e: ReturnType<typeof effectiveConfig>): string {
  const out = [`# effective bpfpilot configuration (file: ${e.file ?? "none"})`];
  for (const s of e.settings) {
    const line = `${s.key} = ${tomlValue(s.value)}`;
    out.push(
      s.value === null
        ? `# ${s.key} unset (${SOURCE_TEXT[s.source]})`
        : `${line}   # ${SOURCE_TEXT[s.source]}`,
    );
  }
  for (const [name, r] of Object.entries(e.tuners)) {
    out.push("", `[tuner.${name}]`, `policy = ${tomlValue(r.policy)}`);
  }
  for (const [name, r] of Object.entries(e.sysctls)) {
    out.push("", `[sysctl.${JSON.stringify(name)}]`, `policy = ${tomlValue(r.policy)}`);
    if (r.ceiling) out.push(`ceiling = ${tomlValue(r.ceiling)}`);
  }
  return out.join("\n");
}

export function configCommand(setExit: (code: number) => void) {
  // exitOverride: a usage error reaches main() as a CommanderError (exit 2).
  const config = new Command("config").description(
    `check or show the configuration file (${DEFAULT_CONFIG_FILE}, TOML)`,
  ).exitOverride();
  config.command("check")
    .description("validate a configuration file: every problem with its line number")
    .argument("[file]", `the file to check (default ${DEFAULT_CONFIG_FILE})`)
    .option("--json", "print one JSON object: file, valid, problems [{line, message}]")
    .addHelpText(
      "after",
      `
Exit status: 0 valid (or no file at the default path), 1 problems found or the file cannot be
read safely, 2 usage error. Example: bpfpilot config check /etc/bpfpilot/bpfpilot.conf`,
    )
    .action((file, opts) => setExit(runCheck(file, opts.json ?? false)));
  config.command("example")
    .description(
      "print an example configuration file: every key commented out with its default " +
        "(packages install it as /usr/share/doc/bpfpilot/bpfpilot.conf.example)",
    )
    .addHelpText(
      "after",
      `
Example: bpfpilot config example > ${DEFAULT_CONFIG_FILE} (then uncomment what you change)`,
    )
    .action(() => {
      console.log(exampleConfig().trimEnd());
      setExit(EXIT.ok);
    });
  const show = addRunOptions(
    new Command("show").exitOverride().description(
      "print the settings a daemon started with these flags would use (flags over the file " +
        "over the defaults) and the file's policy",
    ),
  ).option("--json", "print one JSON object");
  show.addHelpText(
    "after",
    `
The text form is itself a valid configuration file. Exit status: 0, 1 the file is unreadable or
has problems, 2 usage error. Example: bpfpilot config show --config ./test.conf -r 2`,
  );
  show.action(() => {
    const opts = show.opts() as RunFlags & { json?: boolean };
    const e = effectiveConfig(opts, (a) => show.getOptionValueSource(a));
    console.log(opts.json ? JSON.stringify(e, null, 2) : renderShow(e));
    setExit(EXIT.ok);
  });
  config.addCommand(show as unknown as Command);
  return config;
}
