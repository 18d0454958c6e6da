/**
 * The daemon's choice of tuners (daemon/tuner_selection.ts): --disable and -a against the tuners
 * bpfpilot has, then what this kernel leaves each to do.
 */
import assert from "node:assert/strict";
import { selectTuners } from "../../src/daemon/tuner_selection.ts";
import { DaemonStartError } from "../../src/daemon/start_error.ts";
import type { TunerDefinition } from "../../src/tuning/tuner.ts";
import { recordingLog } from "../support/fake_context.ts";

function tuner(name: string, extra: Partial<TunerDefinition> = {}): TunerDefinition {
  return {
    name,
    id: 1,
    description: name,
    tunables: [{ sysctl: `net.core.${name}`, values: 1, scope: "global" }],
    scenarios: [],
    hooks: [],
    create: () => {
      throw new Error("not created here");
    },
    ...extra,
  };
}

const ALL = [
  tuner("sysctl", { alwaysOn: true, tunables: [] }),
  tuner("tcp_buffer"),
  tuner("route_table", { unavailable: () => "nothing to tune on this kernel" }),
  tuner("tcp_conn", { tunables: [], tunesConnections: true }),
];
const none = { disable: [], allow: null, faultInject: [] };
const names = (defs: readonly TunerDefinition[]) => defs.map((d) => d.name);

Deno.test("all by default; a tuner with nothing to do here is unavailable, with its reason", () => {
  const { log, lines } = recordingLog();
  const s = selectTuners(ALL, none, log);
  assert.deepEqual(names(s.runnable), ["sysctl", "tcp_buffer", "tcp_conn"]);
  assert.deepEqual(s.disabled, []);
  assert.deepEqual(s.unavailable.map((u) => [u.def.name, u.reason, u.nothingToDo]), [
    ["route_table", "nothing to tune on this kernel", true],
  ]);
  assert.deepEqual(lines, ["I tuner route_table is unavailable: nothing to tune on this kernel"]);
});

Deno.test("-a keeps the named tuners and the always-on one, saying why it runs", () => {
  const { log, lines } = recordingLog();
  const s = selectTuners(ALL, { ...none, allow: ["tcp_conn", "nosuch"] }, log);
  assert.deepEqual(names(s.runnable), ["sysctl", "tcp_conn"]);
  assert.deepEqual(s.disabled, ["tcp_buffer", "route_table"]);
  assert.match(lines[0], /^W -a nosuch: bpfpilot has no such tuner \(known: sysctl, tcp_buffer, /);
  assert.match(lines[1], /^I tuner sysctl runs although -a did not name it/);
});

Deno.test("--disable of a tuner bpfpilot lacks, -a of none it has: refused with the fix", () => {
  const { log } = recordingLog();
  assert.throws(
    () => selectTuners(ALL, { ...none, disable: ["tcp_bufer"] }, log),
    (e) =>
      e instanceof DaemonStartError &&
      /unknown tuner 'tcp_bufer'; known tuners: sysctl/.test(e.message),
  );
  assert.throws(
    () => selectTuners(ALL, { ...none, allow: ["nosuch"] }, log),
    (e) =>
      e instanceof DaemonStartError &&
      /none of the tuners given with -a \(nosuch\)/.test(e.message),
  );
});

Deno.test("every tuner that tunes switched off: refused; the always-on watcher alone is not a run", () => {
  const { log } = recordingLog();
  assert.throws(
    () => selectTuners(ALL, { ...none, disable: ["tcp_buffer", "route_table", "tcp_conn"] }, log),
    (e) =>
      e instanceof DaemonStartError &&
      e.message.startsWith(
        "every tuner that tunes is switched off (tcp_buffer, route_table, tcp_conn)",
      ),
  );
});

Deno.test("the test switch <tuner>:available loads one with nothing to do, with a warning", () => {
  const { log, lines } = recordingLog();
  const s = selectTuners(ALL, { ...none, faultInject: ["route_table:available"] }, log);
  assert.ok(names(s.runnable).includes("route_table"));
  assert.deepEqual(s.unavailable, []);
  assert.match(lines[0], /^W tuner route_table loaded although it has nothing to do here/);
});

Deno.test("a tuner whose availability check throws is unavailable with what it said", () => {
  const { log } = recordingLog();
  const broken = tuner("neigh_table", {
    unavailable: () => {
      throw new Error("cannot read /proc/net/stat");
    },
  });
  const s = selectTuners([...ALL, broken], none, log);
  assert.equal(
    s.unavailable.find((u) => u.def.name === "neigh_table")?.reason,
    "cannot tell whether it can work here: cannot read /proc/net/stat",
  );
});
