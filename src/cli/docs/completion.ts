/**
 * bash, zsh and fish completions from the command-line model. Values come from the model too:
 * `--allow <tuner>` lists the tuner registry, `query <verb>` the control protocol's verbs, choices
 * their choices, `<dir>`/`<file>` the file system.
 */
import type { ArgumentSpec, CommandSpec, OptionSpec, ValueKind } from "./model.ts";

const HEADER =
  "generated from bpfpilot's command-line definition (scripts/gen_docs.ts); do not edit";

/** The gist of a description for a one-line menu: up to its first clause. */
function brief(text: string): string {
  return text.split(/ \(|: |; |\. /)[0];
}

function names(o: OptionSpec): string[] {
  return [o.short, o.long].filter((n): n is string => Boolean(n));
}

/** The subcommands, plus `help <command>` (commander's). */
function subcommands(root: CommandSpec): CommandSpec[] {
  const help: CommandSpec = {
    name: "help",
    description: "show help for a command",
    usage: "",
    options: [],
    arguments: [{
      name: "command",
      required: false,
      description: "",
      value: { kind: "words", words: root.commands.map((c) => c.name) },
    }],
    commands: [],
    helpAfter: "",
  };
  return [...root.commands.map(withNested), help];
}

/**
 * A command with subcommands of its own (`config check|show`) completes as one command whose
 * first word is the subcommand, with every subcommand's options and the first one's arguments.
 */
function withNested(c: CommandSpec): CommandSpec {
  if (!c.commands.length) return c;
  const options = new Map(c.options.map((o) => [o.flags, o]));
  for (const n of c.commands) for (const o of n.options) options.set(o.flags, o);
  return {
    ...c,
    options: [...options.values()],
    arguments: [
      {
        name: "command",
        required: true,
        description: "",
        value: { kind: "words", words: c.commands.map((n) => n.name) },
      },
      ...(c.commands.find((n) => n.arguments.length)?.arguments ?? []),
    ],
  };
}

// ---------------------------------------------------------------- bash

/** bash cannot key an associative array by "": the root's options live under this key. */
const ROOT_KEY = "bpfpilot";

function bashReply(v: ValueKind): string {
  switch (v.kind) {
    case "words":
      return `COMPREPLY=($(compgen -W "${v.words.join(" ")}" -- "$cur"))`;
    case "dir":
      return `COMPREPLY=($(compgen -d -- "$cur"))`;
    case "file":
      return `COMPREPLY=($(compgen -f -- "$cur"))`;
    case "free":
      return "COMPREPLY=()";
  }
}

export function bashCompletion(root: CommandSpec): string {
  const cmds = subcommands(root);
  const scopes: [string, CommandSpec][] = [
    [ROOT_KEY, root],
    ...cmds.map((c) => [c.name, c] as [string, CommandSpec]),
  ];
  const optWords = scopes.map(([k, c]) => `    [${k}]="${c.options.flatMap(names).join(" ")}"`);
  const valued = scopes.map(([k, c]) =>
    `    [${k}]=" ${c.options.filter((o) => o.value).flatMap(names).join(" ")} "`
  );
  const valueCases = scopes.flatMap(([k, c]) =>
    c.options.filter((o) => o.value).map((o) =>
      `    ${names(o).map((n) => `"${k} ${n}"`).join("|")}) ${bashReply(o.value!)}; return ;;`
    )
  );
  const argCases = cmds.flatMap((c) =>
    c.arguments.map((a: ArgumentSpec, i) => `    "${c.name} ${i}") ${bashReply(a.value)} ;;`)
  );
  return `# bash completion for bpfpilot, ${HEADER}
_bpfpilot() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=""
  ((COMP_CWORD > 0)) && prev=\${COMP_WORDS[COMP_CWORD-1]}
  local -A opts=(
${optWords.join("\n")}
  )
  local -A valued=(
${valued.join("\n")}
  )
  # The command is the first word that is neither an option nor an option's value.
  local cmd=${ROOT_KEY} npos=0 i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ \${valued[$cmd]} == *" $w "* ]]; then ((i++)); continue; fi
    [[ $w == -* ]] && continue
    if [[ $cmd == ${ROOT_KEY} && -n \${opts[$w]+set} && $w != ${ROOT_KEY} ]]; then
      cmd=$w
    else
      ((npos++))
    fi
  done
  case "$cmd $prev" in
${valueCases.join("\n")}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "\${opts[$cmd]}" -- "$cur"))
    return
  fi
  if [[ $cmd == ${ROOT_KEY} ]]; then
    COMPREPLY=($(compgen -W "${cmds.map((c) => c.name).join(" ")}" -- "$cur"))
    return
  fi
  case "$cmd $npos" in
${argCases.join("\n")}
    *) COMPREPLY=() ;;
  esac
}
complete -F _bpfpilot bpfpilot
`;
}

// ---------------------------------------------------------------- zsh

/** Text inside a single-quoted zsh _arguments spec: no brackets, colons escaped. */
function zshText(s: string): string {
  return brief(s).replace(/[[\]]/g, "").replace(/:/g, "\\:").replace(/'/g, "'\\''");
}

function zshAction(v: ValueKind): string {
  switch (v.kind) {
    case "words":
      return `(${v.words.join(" ")})`;
    case "dir":
      return "_files -/";
    case "file":
      return "_files";
    case "free":
      return " ";
  }
}

function zshOption(o: OptionSpec): string {
  const desc = `[${zshText(o.description)}]`;
  const value = o.value ? `:${o.valueName}:${zshAction(o.value)}` : "";
  const ns = names(o);
  const spec = ns.length > 1 ? `{${ns.join(",")}}` : ns[0];
  return `    '*'${spec}'${desc}${value.replace(/'/g, "'\\''")}'`;
}

function zshArgs(c: CommandSpec): string[] {
  return [
    ...c.options.map(zshOption),
    ...c.arguments.map((a, i) =>
      `    '${i + 1}:${a.required ? "" : ":"}${a.name}:${zshAction(a.value)}'`
    ),
  ];
}

export function zshCompletion(root: CommandSpec): string {
  const cmds = subcommands(root);
  const described = cmds.map((c) => `    '${c.name}:${zshText(c.description)}'`);
  const perCommand = cmds.map((c) =>
    `      (${c.name})\n        _arguments -s \\\n${zshArgs(c).join(" \\\n")}\n        ;;`
  );
  return `#compdef bpfpilot
# zsh completion for bpfpilot, ${HEADER}
_bpfpilot() {
  local curcontext="$curcontext" state line
  typeset -A opt_args
  local -a commands=(
${described.join("\n")}
  )
  _arguments -C -s \\
${root.options.map(zshOption).join(" \\\n")} \\
    '1: :->command' \\
    '*:: :->args'
  case $state in
    command) _describe -t commands 'bpfpilot command' commands ;;
    args)
      case $line[1] in
${perCommand.join("\n")}
      esac
      ;;
  esac
}
_bpfpilot "$@"
`;
}

// ---------------------------------------------------------------- fish

function fishQuote(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function fishValue(v: ValueKind): string {
  switch (v.kind) {
    case "words":
      return ` -x -a ${fishQuote(v.words.join(" "))}`;
    case "dir":
      return " -x -a '(__fish_complete_directories)'";
    case "file":
      return " -r -F";
    case "free":
      return " -x";
  }
}

function fishOption(condition: string, o: OptionSpec): string {
  const flags = [o.short && `-s ${o.short.slice(1)}`, o.long && `-l ${o.long.slice(2)}`]
    .filter(Boolean).join(" ");
  const value = o.value ? fishValue(o.value) : "";
  return `complete -c bpfpilot -n ${fishQuote(condition)} ${flags}${value} -d ${
    fishQuote(brief(o.description))
  }`;
}

export function fishCompletion(root: CommandSpec): string {
  const cmds = subcommands(root);
  const names = cmds.map((c) => c.name).join(" ");
  const top = "not __fish_seen_subcommand_from " + names;
  const lines = [
    `# fish completion for bpfpilot, ${HEADER}`,
    "complete -c bpfpilot -f",
    ...cmds.map((c) =>
      `complete -c bpfpilot -n ${fishQuote(top)} -a ${c.name} -d ${fishQuote(brief(c.description))}`
    ),
    ...root.options.map((o) => fishOption(top, o)),
  ];
  for (const c of cmds) {
    const seen = `__fish_seen_subcommand_from ${c.name}`;
    lines.push(...c.options.map((o) => fishOption(seen, o)));
    c.arguments.forEach((a, i) => {
      const cond = `${seen}; and __fish_is_nth_token ${i + 2}`;
      const v = a.value;
      if (v.kind === "words") {
        lines.push(`complete -c bpfpilot -n ${fishQuote(cond)} -a ${fishQuote(v.words.join(" "))}`);
      } else if (v.kind !== "free") {
        lines.push(`complete -c bpfpilot -n ${fishQuote(cond)} -F`);
      }
    });
  }
  return lines.join("\n") + "\n";
}

/** Every completion file bpfpilot ships, by its conventional file name. */
export function completions(root: CommandSpec): Record<string, string> {
  return {
    "bpfpilot.bash": bashCompletion(root),
    "_bpfpilot": zshCompletion(root),
    "bpfpilot.fish": fishCompletion(root),
  };
}
