/**
 * The example configuration file packages ship as documentation
 * (/usr/share/doc/bpfpilot/bpfpilot.conf.example; `bpfpilot config example` prints it): every
 * key of the daemon's option table (src/cli/run_options.ts) commented out with its default, or
 * with an example value where unset means off, so it cannot fall behind the flags. Uncommented,
 * it is a valid file (test/unit/config_example_test.ts).
 */
import { type ConfigKey, configKeys } from "./options.ts";
import { POLICIES } from "./parse.ts";
import { DEFAULT_CONFIG_FILE, UNSET_FLAGS } from "../cli/run_options.ts";

/** A TOML value as the file spells it. */
export function tomlValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(", ")}]`;
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

/** `text` as `# ` comment lines of at most `width` characters. */
function commentLines(text: string, width = 96): string[] {
  const out: string[] = [];
  let line = "#";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line.length + 1 + word.length > width && line !== "#") {
      out.push(line);
      line = "#";
    }
    line += ` ${word}`;
  }
  out.push(line);
  return out;
}

/** The lines for one key: its description, then `# key = value`. */
function keyLines(k: ConfigKey): string[] {
  const lines = commentLines(k.description);
  const unset = UNSET_FLAGS[k.attribute];
  let value: unknown;
  if (k.defaultValue !== undefined) value = k.defaultValue;
  else if (k.value.type === "boolean") value = false;
  else if (unset && "default" in unset) value = unset.default;
  else if (unset && "example" in unset) {
    lines.push("# (unset by default) for example:");
    value = unset.example;
  } else {
    throw new Error(`run flag --${k.key} has no default or example in UNSET_FLAGS`);
  }
  lines.push(`# ${k.key} = ${tomlValue(value)}`);
  if (k.value.type === "string" && k.value.negatable) {
    lines.push(`# (${k.key} = false is --no-${k.key})`);
  }
  return lines;
}

export function exampleConfig(): string {
  const out = [
    `# ${DEFAULT_CONFIG_FILE}: bpfpilot's daemon configuration (TOML). Example: every key is`,
    "# commented out with its default. A flag given on the command line wins over the file;",
    "# `bpfpilot config check` validates it, `bpfpilot config show` prints what a daemon would",
    "# use, and `kill -HUP` (`systemctl reload bpfpilot`) re-reads it. See bpfpilot(8).",
  ];
  for (const k of configKeys()) out.push("", ...keyLines(k));
  out.push(
    "",
    `# Per tuner: policy = ${POLICIES.map((p) => `"${p}"`).join(" | ")} (the first is the`,
    "# default; advise-only logs the change with its `sysctl -w` line and does not write it).",
    "# [tuner.neigh_table]",
    '# policy = "advise-only"',
    "",
    "# Per sysctl: the same policies, and a ceiling growth stops at (one number caps every",
    "# field; it never lowers a value already above it).",
    '# [sysctl."net.ipv4.tcp_rmem"]',
    '# policy = "tune"',
    "# ceiling = [4096, 131072, 16777216]",
  );
  return out.join("\n") + "\n";
}
