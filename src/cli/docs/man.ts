/**
 * Man pages in roff (man(7) macros) from the command-line model: bpfpilot(8) for the daemon and
 * the small commands, bpfpilot-audit(8) and bpfpilot-query(8) for the two with their own manuals.
 * The --help texts are the source; what --help cannot say (files, see also) is added here.
 */
import { DEFAULT_CONTROL_SOCKET } from "../../daemon/control/socket_file.ts";
import { DEFAULT_STATE_DIR } from "../../daemon/journal.ts";
import { VERSION } from "../../version.ts";
import { DEFAULT_CONFIG_FILE } from "../run_options.ts";
import type { CommandSpec, OptionSpec } from "./model.ts";

/** Escapes text for roff: backslashes, hyphens (so they stay ASCII minus), leading dots. */
export function roff(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .split("\n")
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join("\n");
}

/** Standard man sections that an after-help paragraph label maps to. */
const SECTION_OF_LABEL: [RegExp, string][] = [
  [/^exit status/i, "EXIT STATUS"],
  [/^examples?$/i, "EXAMPLES"],
  [/^environment$/i, "ENVIRONMENT"],
];

interface Block {
  label: string | null;
  lines: string[];
}

/** Splits an after-help text into paragraphs headed "Label: ..." at the start of a line. */
function blocks(text: string): Block[] {
  const out: Block[] = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^([A-Z][A-Za-z ]{0,30})( \([^)]*\))?:(?:\s+(.*))?$/);
    if (m) {
      const first = [m[2]?.trim(), m[3] && m[3][0].toUpperCase() + m[3].slice(1)].filter(Boolean);
      out.push({ label: m[1], lines: first.length ? [first.join(" ")] : [] });
    } else if (out.length) out[out.length - 1].lines.push(line);
    else out.push({ label: null, lines: [line] });
  }
  return out.map((b) => ({ ...b, lines: trimBlank(b.lines) })).filter((b) => b.lines.length);
}

function trimBlank(lines: string[]): string[] {
  let a = 0, z = lines.length;
  while (a < z && !lines[a].trim()) a++;
  while (z > a && !lines[z - 1].trim()) z--;
  return lines.slice(a, z);
}

/** Prose lines are filled; indented lines (tables, commands) keep their layout. */
function body(lines: string[]): string {
  const out: string[] = [];
  let verbatim = false;
  for (const line of lines) {
    const indented = /^\s/.test(line) && line.trim() !== "";
    if (indented && !verbatim) out.push(".nf");
    if (!indented && verbatim) out.push(".fi");
    verbatim = indented;
    out.push(line.trim() === "" ? ".sp" : roff(verbatim ? line : line.trim()));
  }
  if (verbatim) out.push(".fi");
  return out.join("\n");
}

function optionItem(o: OptionSpec): string {
  const names = [o.short, o.long].filter(Boolean).map((n) => `\\fB${roff(n!)}\\fR`).join(", ");
  const value = o.valueName ? ` \\fI${roff(o.valueName)}\\fR` : "";
  const words = o.value?.kind === "words" && !o.description.includes(o.value.words[0])
    ? ` (one of: ${roff(o.value.words.join(", "))})`
    : "";
  const def = o.defaultValue !== undefined && o.defaultValue !== false &&
      !/default/.test(o.description)
    ? ` (default ${roff(String(o.defaultValue))})`
    : "";
  return `.TP\n${names}${value}\n${roff(o.description)}${words}${def}`;
}

function optionsList(opts: OptionSpec[]): string {
  return opts.map(optionItem).join("\n");
}

function header(name: string, summary: string): string {
  return [
    `.\\" Generated from bpfpilot's command-line definition (scripts/gen_docs.ts); do not edit.`,
    `.TH ${name.toUpperCase()} 8 "" "bpfpilot ${VERSION}" "System Administration"`,
    `.SH NAME`,
    `${roff(name)} \\- ${roff(summary)}`,
  ].join("\n");
}

/** Renders after-help paragraphs: standard labels become sections, others subsections. */
function afterSections(text: string, ownSection: string): string {
  const own: string[] = [];
  const standard = new Map<string, string[]>();
  for (const b of blocks(text)) {
    const std = b.label && SECTION_OF_LABEL.find(([re]) => re.test(b.label!))?.[1];
    if (std) {
      standard.set(std, [...(standard.get(std) ?? []), body(b.lines)]);
    } else {
      own.push((b.label ? `.SS ${roff(b.label)}\n` : ".PP\n") + body(b.lines));
    }
  }
  const parts = own.length ? [`.SH ${ownSection}`, ...own] : [];
  for (const [section, texts] of standard) parts.push(`.SH ${section}`, texts.join("\n.PP\n"));
  return parts.join("\n");
}

function firstSentence(text: string): string {
  return text.split(/: |; |\. /)[0];
}

function synopsis(prefix: string, cmd: CommandSpec): string {
  const args = cmd.arguments.map((a) => a.required ? `\\fI${a.name}\\fR` : `[\\fI${a.name}\\fR]`);
  return `.SY "${prefix}"\n[\\fIoptions\\fR] ${args.join(" ")}\n.YS`;
}

const SEE_ALSO = ["bpfpilot(8)", "bpfpilot-audit(8)", "bpfpilot-query(8)", "sysctl(8)"];

function seeAlso(self: string): string {
  const refs = [...SEE_ALSO.filter((r) => !r.startsWith(`${self}(`)), "systemd.exec(5)"];
  return `.SH SEE ALSO\n${
    refs.map((r) => r.replace(/^(.*)\((\d)\)$/, "\\fB$1\\fR($2)").replace(/-/g, "\\-")).join(",\n")
  }`;
}

const FILES = `.SH FILES
.TP
.I ${roff(DEFAULT_STATE_DIR)}
State: the journal of every change (old value, new value, reason) that \\fBbpfpilot rollback\\fR
undoes, and the sysctls an administrator took over.
.TP
.I ${roff(DEFAULT_CONTROL_SOCKET)}
The control socket \\fBbpfpilot query\\fR talks to.
.TP
.I ${roff(DEFAULT_CONFIG_FILE)}
The configuration file (TOML): any daemon option by its long name, and per-tuner and per-sysctl
policy (\\fBdisabled\\fR, \\fBadvise\\-only\\fR, \\fBceiling\\fR). Flags override it; SIGHUP re-reads it;
\\fBbpfpilot config check\\fR validates it.
.TP
.I /etc/default/bpfpilot
Extra daemon flags for the systemd unit (\\fBBPFPILOT_ARGS=\\fR).
.TP
.I /etc/default/bpfpilot\\-audit
Flags of the hourly audit (\\fBBPFPILOT_AUDIT_ARGS=\\fR).
.TP
.I /usr/lib/systemd/system/bpfpilot.service
The daemon unit (installed, not enabled: tuning a host is a decision).
.TP
.I /usr/lib/systemd/system/bpfpilot\\-audit.timer
Runs \\fBbpfpilot audit\\fR hourly (advice only).`;

/** bpfpilot(8): the daemon (root options) and the small commands. */
export function mainPage(root: CommandSpec): string {
  const own = new Set(["audit", "query"]);
  // `config check`, `config show`: each nested command is listed under its full name, with the
  // options that are not the root's (those are listed above).
  const rootFlags = new Set(root.options.map((o) => o.flags));
  const listed = root.commands.flatMap((c) =>
    c.commands.length
      ? c.commands.map((n) => ({
        ...n,
        name: `${c.name} ${n.name}`,
        options: n.options.filter((o) => !rootFlags.has(o.flags)),
      }))
      : [c]
  );
  const commands = listed.map((c) => {
    const page = own.has(c.name) ? `.\nSee \\fBbpfpilot\\-${c.name}\\fR(8).` : "";
    const args = c.arguments.map((a) => a.required ? ` \\fI${a.name}\\fR` : ` [\\fI${a.name}\\fR]`);
    const opts = own.has(c.name) || c.name === "run"
      ? ""
      : c.options.length
      ? `\n.RS\n${optionsList(c.options)}\n.RE`
      : "";
    return `.TP\n\\fB${roff(c.name)}\\fR${args.join("")}\n${roff(c.description)}${page}${opts}`;
  });
  return [
    header("bpfpilot", firstSentence(root.description)),
    ".SH SYNOPSIS",
    synopsis("bpfpilot", root),
    ...listed.map((c) => synopsis(`bpfpilot ${c.name}`, c)),
    ".SH DESCRIPTION",
    roff(root.description),
    ".PP",
    "\\fBbpfpilot run\\fR takes the same options as \\fBbpfpilot\\fR with no command.",
    ".SH OPTIONS",
    optionsList(root.options),
    ".SH COMMANDS",
    ...commands,
    afterSections(root.helpAfter, "DETAILS"),
    FILES,
    seeAlso("bpfpilot"),
    "",
  ].join("\n");
}

/** bpfpilot-<name>(8) for one subcommand. */
export function commandPage(root: CommandSpec, name: string): string {
  const cmd = root.commands.find((c) => c.name === name);
  if (!cmd) throw new Error(`no command '${name}' in the CLI definition`);
  return [
    header(`bpfpilot-${name}`, firstSentence(cmd.description)),
    ".SH SYNOPSIS",
    synopsis(`bpfpilot ${name}`, cmd),
    ".SH DESCRIPTION",
    roff(cmd.description),
    ...(cmd.arguments.length
      ? [
        ".SH ARGUMENTS",
        ...cmd.arguments.map((a) => `.TP\n\\fI${a.name}\\fR\n${roff(a.description)}`),
      ]
      : []),
    ".SH OPTIONS",
    optionsList(cmd.options),
    afterSections(cmd.helpAfter, "DETAILS"),
    seeAlso(`bpfpilot-${name}`),
    "",
  ].join("\n");
}

/** Every page bpfpilot ships, by file name. */
export function manPages(root: CommandSpec): Record<string, string> {
  return {
    "bpfpilot.8": mainPage(root),
    "bpfpilot-audit.8": commandPage(root, "audit"),
    "bpfpilot-query.8": commandPage(root, "query"),
  };
}
