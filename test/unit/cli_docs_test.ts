/**
 * Man pages and shell completions are generated from the commander definition (scripts/gen_docs.ts):
 * rendered by man(1), run by real bash and fish, checked by zsh, and compared with --help so they
 * cannot drift. Tuner names come from the registry, so a new tuner shows up with no edit here.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { TUNERS } from "../../src/tuners/registry.ts";
import { exampleConfig } from "../../src/config/example.ts";
import { VERB_NAMES } from "../../src/daemon/control/protocol.ts";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const DENO = join(ROOT, "node_modules/.bin/deno");
const have = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

/** Generates into a temp dir once for every test here. */
const out = mkdtempSync(join(tmpdir(), "bpfp-docs-"));
const gen = spawnSync(DENO, ["run", "-A", join(ROOT, "scripts/gen_docs.ts"), "--out-dir", out], {
  encoding: "utf8",
});
addEventListener("unload", () => rmSync(out, { recursive: true, force: true }));
const file = (rel: string) => readFileSync(join(out, rel), "utf8");

function help(...args: string[]): string {
  const r = spawnSync(DENO, ["run", "-A", join(ROOT, "src/main.ts"), ...args, "--help"], {
    encoding: "utf8",
    env: { ...Deno.env.toObject(), NO_COLOR: "1", COLUMNS: "100" },
  });
  return r.stdout;
}

/** Long options as --help lists them (first column). */
function helpFlags(text: string): string[] {
  return [...text.matchAll(/^\s+(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]);
}

function manText(page: string): { text: string; warnings: string } {
  const r = spawnSync("man", ["--warnings", "-l", join(out, "man", page)], {
    encoding: "utf8",
    env: { ...Deno.env.toObject(), MANWIDTH: "100", PAGER: "cat" },
  });
  assert.equal(r.status, 0, r.stderr);
  // man(1) writing to a pipe prints plain text; undo hyphenation so words can be searched for.
  const text = r.stdout.replace(/‐\n\s*/g, "").replace(/-\n\s*/g, "-");
  return { text, warnings: r.stderr };
}

Deno.test("docs: the generator writes three man pages, three completions and the example config", () => {
  assert.equal(gen.status, 0, gen.stderr);
  for (const f of ["bpfpilot.8", "bpfpilot-audit.8", "bpfpilot-query.8"]) {
    assert.match(file(`man/${f}`), /^\.TH /m);
  }
  for (const f of ["bpfpilot.bash", "_bpfpilot", "bpfpilot.fish"]) {
    assert.ok(file(`completions/${f}`).length > 200);
  }
  assert.equal(file("bpfpilot.conf.example"), exampleConfig());
});

Deno.test({
  name: "man pages: render with man -l without warnings and list every --help flag",
  ignore: !have("man"),
  fn() {
    const cases: [string, string[], RegExp[]][] = [
      ["bpfpilot.8", [], [/^NAME/m, /^SYNOPSIS/m, /^OPTIONS/m, /^EXIT STATUS/m, /^FILES/m]],
      ["bpfpilot-audit.8", ["audit"], [/^EXIT STATUS/m, /^EXAMPLES/m]],
      ["bpfpilot-query.8", ["query"], [/^ARGUMENTS/m, /^EXIT STATUS/m]],
    ];
    for (const [page, cmd, sections] of cases) {
      const { text, warnings } = manText(page);
      assert.equal(warnings, "", `${page}: groff warnings`);
      for (const s of sections) assert.match(text, s, `${page} has ${s}`);
      const flags = helpFlags(help(...cmd));
      assert.ok(flags.length >= 5, `--help of '${cmd.join(" ")}' lists flags`);
      for (const flag of flags) assert.ok(text.includes(flag), `${page} documents ${flag}`);
    }
    const main = manText("bpfpilot.8").text;
    for (const t of TUNERS) assert.ok(main.includes(t.name), `bpfpilot(8) names tuner ${t.name}`);
    assert.match(main, /\/var\/lib\/bpfpilot/);
    assert.match(main, /bpfpilot-query\(8\)/);
  },
});

/** What bash completion offers for the words typed so far (the last one is being completed). */
function bashComplete(...words: string[]): string[] {
  const script = `source ${JSON.stringify(join(out, "completions/bpfpilot.bash"))}
COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(" ")}); COMP_CWORD=${words.length - 1}
_bpfpilot; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync("bash", ["--norc", "-c", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean);
}

Deno.test("bash completion: commands, query verbs and tuner names from the registry", () => {
  const tuners = TUNERS.map((t) => t.name);
  assert.deepEqual(bashComplete("bpfpilot", "q"), ["query"]);
  assert.deepEqual(bashComplete("bpfpilot", "query", ""), [...VERB_NAMES]);
  assert.deepEqual(bashComplete("bpfpilot", "--allow", ""), tuners);
  assert.deepEqual(
    bashComplete("bpfpilot", "run", "-s", "-a", "tcp"),
    tuners.filter((t) => t.startsWith("tcp")),
  );
  assert.deepEqual(bashComplete("bpfpilot", "query", "disable", ""), tuners);
  assert.deepEqual(bashComplete("bpfpilot", "--prefer", "tr"), ["tracepoint"]);
  assert.ok(bashComplete("bpfpilot", "audit", "--d").includes("--duration"));
  // An option's value is not taken for the command.
  assert.deepEqual(bashComplete("bpfpilot", "--state-dir", "/nonexistent", "su"), ["support"]);
  assert.ok(bashComplete("bpfpilot", "").includes("audit"));
  // Nested commands: `config check|example|show`, then the file and the subcommands' options.
  assert.deepEqual(bashComplete("bpfpilot", "config", ""), ["check", "example", "show"]);
  assert.ok(bashComplete("bpfpilot", "config", "check", "--j").includes("--json"));
});

Deno.test({
  name: "man page: the nested config commands are listed with their arguments and options",
  ignore: !have("man"),
  fn() {
    const { text } = manText("bpfpilot.8");
    assert.match(text, /bpfpilot config check \[options\] \[file\]/);
    assert.match(text, /config check \[file\]\s+validate\s+a\s+configuration\s+file/);
    assert.match(text, /config show\s+print\s+the\s+settings\s+a\s+daemon/);
    assert.match(text, /\/etc\/bpfpilot\/bpfpilot\.conf\s+The\s+configuration\s+file\s+\(TOML\)/);
  },
});

Deno.test({
  name: "fish completion: the same answers from fish's own completion engine",
  ignore: !have("fish"),
  fn() {
    const complete = (line: string) => {
      const r = spawnSync("fish", [
        "--no-config",
        "-c",
        `source ${join(out, "completions/bpfpilot.fish")}; complete -C ${JSON.stringify(line)}`,
      ], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split("\n").filter(Boolean).map((l) => l.split("\t")[0]).sort();
    };
    assert.deepEqual(complete("bpfpilot q"), ["query"]);
    assert.deepEqual(complete("bpfpilot query "), [...VERB_NAMES].sort());
    assert.deepEqual(complete("bpfpilot --allow "), TUNERS.map((t) => t.name).sort());
  },
});

Deno.test({
  name: "zsh completion: parses, and names every command and tuner",
  ignore: !have("zsh"),
  fn() {
    const path = join(out, "completions/_bpfpilot");
    const r = spawnSync("zsh", ["-n", path], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const text = file("completions/_bpfpilot");
    assert.match(text, /^#compdef bpfpilot$/m);
    for (const t of TUNERS) assert.ok(text.includes(t.name));
    for (const v of VERB_NAMES) assert.ok(text.includes(v));
  },
});
