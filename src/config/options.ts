/**
 * The configuration file's top-level keys, derived from the daemon's commander options
 * (src/cli/run_options.ts): every run flag is a key spelled as its long name (`--learning-rate`
 * -> `learning-rate`) unless it is listed in FLAG_ONLY with the reason, so a new flag cannot be
 * forgotten here (test/unit/config_test.ts checks it).
 */
import { Command, type Option } from "@commander-js/extra-typings";
import { addRunOptions, collect } from "../cli/run_options.ts";

/** Run flags that have no configuration key, by attribute name, and why. */
export const FLAG_ONLY: Readonly<Record<string, string>> = {
  config: "it names the configuration file itself",
  daemon: "it says how this invocation runs (a service manager runs the daemon in the foreground)",
  learning_rate: "bpftune's spelling of --learning-rate (the key is learning-rate)",
  libdir: "bpftune's plugin directory: accepted on the command line and ignored",
  port: "bpftune's query port: accepted on the command line and ignored",
};

export type ConfigValueKind =
  /** A switch: true or false. */
  | { type: "boolean" }
  /** A value flag: a string (a number is accepted and read as its decimal text). */
  | { type: "string"; choices?: readonly string[]; negatable: boolean }
  /** A repeatable flag: an array of strings (or one string). */
  | { type: "list" };

export interface ConfigKey {
  /** As written in the file: the long flag without its dashes. */
  key: string;
  /** The RunFlags field it sets (commander's attribute name). */
  attribute: string;
  /** The flag a user types, for messages ("--cooldown"). */
  flag: string;
  description: string;
  value: ConfigValueKind;
  /** Commander's default, where the option has one (--log auto). */
  defaultValue?: unknown;
}

function runOptions(): readonly Option[] {
  return addRunOptions(new Command()).options as readonly Option[];
}

/** Every run flag's attribute name (negations folded into their option). */
export function runFlagAttributes(): string[] {
  return [...new Set(runOptions().map((o) => o.attributeName()))];
}

function keyOf(o: Option): ConfigKey {
  const long = o.long ?? o.flags;
  const takesValue = o.required || o.optional;
  const value: ConfigValueKind = !takesValue
    ? { type: "boolean" }
    : o.parseArg === (collect as unknown)
    ? { type: "list" }
    : { type: "string", choices: o.argChoices, negatable: false };
  return {
    key: long.replace(/^--/, ""),
    attribute: o.attributeName(),
    flag: long,
    description: o.description,
    value,
    ...(o.defaultValue !== undefined ? { defaultValue: o.defaultValue } : {}),
  };
}

/** The file's top-level keys, in flag order. */
export function configKeys(): ConfigKey[] {
  const out = new Map<string, ConfigKey>();
  for (const o of runOptions()) {
    const attr = o.attributeName();
    if (attr in FLAG_ONLY) continue;
    const existing = out.get(attr);
    if (o.negate) {
      // --no-control-socket: the key of --control-socket also takes `false`.
      if (existing?.value.type === "string") existing.value.negatable = true;
      else if (!existing) out.set(attr, keyOf(o));
      continue;
    }
    out.set(attr, keyOf(o));
  }
  return [...out.values()];
}
