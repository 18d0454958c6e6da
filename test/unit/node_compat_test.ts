import assert from "node:assert/strict";
import { basename, dirname, extname, resolve } from "../../src/node_compat/path.ts";
import { EventEmitter } from "../../src/node_compat/events.ts";

const COMMANDER = new URL("../../node_modules/commander/", import.meta.url);
const STAND_INS = new URL("../../src/node_compat/", import.meta.url);
/** Objects commander calls into; the others it reads (env, versions) are looked up by any name. */
const CALLED_INTO: Record<string, string[]> = { process: ["stdout", "stderr"] };

/** commander's source files, comments blanked (they mention members no code reads). */
function commanderFiles(): { name: string; code: string }[] {
  const lib = new URL("lib/", COMMANDER);
  return [...Deno.readDirSync(lib)].filter((e) => e.name.endsWith(".js")).map((e) => ({
    name: `lib/${e.name}`,
    code: Deno.readTextFileSync(new URL(e.name, lib))
      .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ""))
      .replace(/^[ \t]*\/\/.*$|[ \t]\/\/[ \t].*$/gm, ""),
  }));
}

/** Names read off `name` (`name.x`, `name?.x`), each with its line number. */
function membersOf(code: string, name: string): [string, number][] {
  return [...code.matchAll(new RegExp(`\\b${name}\\??\\.(\\w+)`, "g"))].map((m) => [
    m[1],
    code.slice(0, m.index).split("\n").length,
  ]);
}

/** The methods a class's own body defines (commander's Command has many of its own). */
function ownMethods(code: string): Set<string> {
  return new Set([...code.matchAll(/^ {2}(\w+)\([^)]*\)\s*\{/gm)].map((m) => m[1]));
}

/**
 * What commander takes from each node: built-in: module -> member -> where. A class it extends
 * counts as the inherited methods it calls (`this.emit`), found against the real class.
 */
async function commanderUses(): Promise<Map<string, Map<string, string>>> {
  const uses = new Map<string, Map<string, string>>();
  const use = (mod: string, member: string, where: string) => {
    if (!uses.has(mod)) uses.set(mod, new Map());
    uses.get(mod)!.set(member, where);
  };
  for (const { name: file, code } of commanderFiles()) {
    const at = (line: number) => `${file}:${line}`;
    for (const [i, line] of code.split("\n").entries()) {
      const req = /require\(\s*['"]([^'"]+)['"]\s*\)/.exec(line);
      if (!req || req[1].startsWith(".")) continue;
      const spec = req[1];
      assert.ok(
        spec.startsWith("node:"),
        `commander's ${file} requires '${spec}': the build puts stand-ins only in place of ` +
          `node: modules (scripts/build.ts), so this one would be left for Deno's Node layer`,
      );
      const mod = spec.slice("node:".length);
      const where = at(i + 1);
      const whole = /^(?:const|let|var)\s+(\w+)\s*=\s*require\([^)]*\)\s*;?$/.exec(line.trim());
      const picked = /^(?:const|let|var)\s+(\w+)\s*=\s*require\([^)]*\)\.(\w+)\s*;?$/.exec(
        line.trim(),
      );
      const destructured = /^(?:const|let|var)\s*\{([^}]*)\}\s*=\s*require\(/.exec(line.trim());
      if (whole) {
        for (const [m, l] of membersOf(code, whole[1])) use(mod, m, at(l));
      } else if (picked) {
        use(mod, picked[2], where);
        if (new RegExp(`\\bclass\\s+\\w+\\s+extends\\s+${picked[1]}\\b`).test(code)) {
          const real = (await import(spec))[picked[2]] as { prototype: object };
          const inherited = new Set(Object.getOwnPropertyNames(real.prototype));
          const own = ownMethods(code);
          for (const [m, l] of membersOf(code, "this")) {
            if (inherited.has(m) && !own.has(m)) use(`${mod}.${picked[2]}`, m, at(l));
          }
        }
      } else if (destructured) {
        for (const m of destructured[1].split(",").map((s) => s.trim().split(/\s*:/)[0])) {
          if (m) use(mod, m, where);
        }
      } else {
        assert.fail(
          `commander takes ${spec} in a way this test cannot follow (${where}: ${line.trim()}): teach ` +
            `commanderUses() the form, then check src/node_compat/${mod}.ts against it`,
        );
      }
      for (const obj of CALLED_INTO[mod] ?? []) {
        const binding = whole?.[1];
        if (!binding) continue;
        for (const [m, l] of membersOf(code, `${binding}\\.${obj}`)) {
          use(`${mod}.${obj}`, m, at(l));
        }
      }
    }
  }
  return uses;
}

/** What a stand-in provides for a key of commanderUses(): a module's exports or an object's. */
async function provided(key: string): Promise<Set<string>> {
  const [mod, ...path] = key.split(".");
  let value: unknown = await import(new URL(`${mod}.ts`, STAND_INS).href);
  for (const p of path) value = (value as Record<string, unknown>)[p];
  const names = typeof value === "function"
    ? Object.getOwnPropertyNames((value as { prototype: object }).prototype)
      .filter((n) => n !== "constructor")
    : Object.keys(value as object);
  return new Set(names);
}

Deno.test("node_compat: the stand-ins provide exactly what commander uses of each node: module", async () => {
  const version = JSON.parse(Deno.readTextFileSync(new URL("package.json", COMMANDER))).version;
  const uses = await commanderUses();
  const standIns = [...Deno.readDirSync(STAND_INS)].map((e) => e.name.replace(/\.ts$/, ""));
  for (const mod of standIns) {
    assert.ok(
      uses.has(mod),
      `src/node_compat/${mod}.ts stands in for node:${mod}, which commander ${version} no ` +
        "longer requires: delete it",
    );
  }
  for (const [key, members] of uses) {
    const [mod] = key.split(".");
    assert.ok(
      standIns.includes(mod),
      `commander ${version} requires node:${mod} (${[...members.values()][0]}), which has no ` +
        `stand-in: write src/node_compat/${mod}.ts with what it uses (see events.ts), or the ` +
        "build fails on the node: import",
    );
    const has = await provided(key);
    for (const [member, where] of members) {
      assert.ok(
        has.has(member),
        `commander ${version} uses ${key}.${member} (${where}), which src/node_compat/${mod}.ts ` +
          "does not provide: add it there (Deno's API underneath), or the bundle fails at run time",
      );
    }
    for (const member of has) {
      assert.ok(
        members.has(member),
        `src/node_compat/${mod}.ts provides ${key}.${member}, which commander ${version} does ` +
          "not use: remove it (the stand-ins hold exactly what commander uses)",
      );
    }
  }
});

Deno.test("node_compat path: the answers node:path gives for POSIX paths", () => {
  for (
    const [p, dir, base] of [
      ["/run/bpfpilot/probe-cache.json", "/run/bpfpilot", "probe-cache.json"],
      ["/etc/", "/", "etc"],
      ["/", "/", ""],
      ["file", ".", "file"],
      ["a/b//", "a", "b"],
      ["//x", "/", "x"],
    ]
  ) {
    assert.equal(dirname(p), dir, `dirname ${p}`);
    assert.equal(basename(p), base, `basename ${p}`);
  }
  assert.equal(basename("/usr/bin/bpfpilot.js", ".js"), "bpfpilot");
  assert.equal(extname("/a/b.tar.gz"), ".gz");
  assert.equal(extname("/a/.hidden"), "");
  assert.equal(resolve("/a/b", "../c", "d"), "/a/c/d");
  assert.equal(resolve("/x", "/y"), "/y");
  assert.equal(resolve("/..", "x"), "/x");
  assert.equal(resolve("rel"), `${Deno.cwd()}/rel`);
});

Deno.test("node_compat EventEmitter: listeners in order, counted, emit says if any ran", () => {
  const e = new EventEmitter();
  const seen: string[] = [];
  assert.equal(e.emit("option:x", 1), false);
  e.on("option:x", (v) => seen.push(`a${v}`)).on("option:x", (v) => seen.push(`b${v}`));
  assert.equal(e.listenerCount("option:x"), 2);
  assert.equal(e.emit("option:x", 1), true);
  assert.deepEqual(seen, ["a1", "b1"]);
});
