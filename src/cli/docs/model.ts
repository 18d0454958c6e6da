/**
 * The command line as data, read from the commander definition that parses it (buildProgram), so
 * man pages and shell completions cannot drift from `--help`: a flag added there appears in both.
 */
import type { Command, Option } from "@commander-js/extra-typings";
import { VERB_NAMES } from "../../daemon/control/protocol.ts";
import { TUNERS } from "../../tuners/registry.ts";
import { buildProgram } from "../main.ts";

/** What a value is completed from: fixed words, files, directories, or nothing (free text). */
export type ValueKind =
  | { kind: "words"; words: string[] }
  | { kind: "file" }
  | { kind: "dir" }
  | { kind: "free" };

export interface OptionSpec {
  short?: string;
  long?: string;
  /** As --help shows it: "-a, --allow <tuner>". */
  flags: string;
  description: string;
  /** The value's placeholder without brackets ("tuner"), or null for a switch. */
  valueName: string | null;
  value: ValueKind | null;
  defaultValue?: unknown;
}

export interface ArgumentSpec {
  name: string;
  required: boolean;
  description: string;
  value: ValueKind;
}

export interface CommandSpec {
  name: string;
  description: string;
  usage: string;
  options: OptionSpec[];
  arguments: ArgumentSpec[];
  commands: CommandSpec[];
  /** The text --help prints after the option list (exit status, examples...). */
  helpAfter: string;
}

/** Names the registry knows: new tuners and query verbs appear in completions automatically. */
export function tunerNames(): string[] {
  return TUNERS.map((t) => t.name);
}

/** Completion source for a value, chosen by its placeholder name (`<tuner>`, `<dir>`...). */
function valueKind(name: string, choices?: readonly string[]): ValueKind {
  if (choices?.length) return { kind: "words", words: [...choices] };
  if (name === "tuner") return { kind: "words", words: tunerNames() };
  if (name === "verb") return { kind: "words", words: [...VERB_NAMES] };
  if (name === "target") return { kind: "words", words: tunerNames() };
  if (name === "dir") return { kind: "dir" };
  if (/file|path|name\|path/.test(name)) return { kind: "file" };
  return { kind: "free" };
}

function optionSpec(o: Option): OptionSpec {
  const m = o.flags.match(/[<[]([^>\]]+)[>\]]/);
  const valueName = m ? m[1] : null;
  const choices = (o as unknown as { argChoices?: string[] }).argChoices;
  return {
    short: o.short,
    long: o.long,
    flags: o.flags,
    description: o.description,
    valueName,
    value: valueName === null ? null : valueKind(valueName, choices),
    defaultValue: o.defaultValue,
  };
}

function helpAfter(cmd: Command): string {
  let text = "";
  // commander keeps addHelpText("after") texts as listeners of this event.
  (cmd as unknown as { emit(event: string, context: unknown): boolean }).emit("afterHelp", {
    error: false,
    command: cmd,
    write: (s: string) => text += s,
  });
  return text.replace(/^\n+|\n+$/g, "");
}

function commandSpec(cmd: Command): CommandSpec {
  const c = cmd as unknown as Command & {
    registeredArguments: readonly {
      name(): string;
      required: boolean;
      description: string;
      argChoices?: string[];
    }[];
  };
  return {
    name: cmd.name(),
    description: cmd.description(),
    usage: cmd.usage(),
    options: (cmd.options as readonly Option[]).filter((o) => !o.hidden).map(optionSpec),
    arguments: c.registeredArguments.map((a) => ({
      name: a.name(),
      required: a.required,
      description: a.description,
      value: valueKind(a.name(), a.argChoices),
    })),
    commands: (cmd.commands as readonly Command[]).map(commandSpec),
    helpAfter: helpAfter(cmd),
  };
}

/** The whole `bpfpilot` command line; `-h, --help` is listed like any other option. */
export function cliSpec(): CommandSpec {
  const program = buildProgram(() => {}) as unknown as Command;
  const withHelp = (spec: CommandSpec): CommandSpec => ({
    ...spec,
    options: [...spec.options, {
      short: "-h",
      long: "--help",
      flags: "-h, --help",
      description: "show help",
      valueName: null,
      value: null,
    }],
    commands: spec.commands.map(withHelp),
  });
  return withHelp(commandSpec(program));
}
