// Kernel-matrix summarizer: judges each kernel's result directory (written by scripts/kernel-matrix
// and the guest script) and prints the matrix (kernel × tuner × chosen hook or reason × result).
//
//   deno run --no-config --allow-read --allow-write scripts/km/summarize.ts \
//     [--json] [--matrix FILE] RESULT_DIR...
//
// RESULT_DIR holds `meta` (key=value lines from the harness), `console.log` (guest console) and
// `out/` (what the guest script wrote). Exit status: 0 when every kernel passed or was skipped for a
// stated reason, 1 otherwise.
const join = (...parts: string[]): string => parts.join("/");
const existsSync = (path: string): boolean => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};

/** One hook of one tuner as the product's `support --json` reports it. */
export interface HookRow {
  tuner: string;
  hook: string;
  chosen: string | null;
  /** The kernel function or tracepoint the chosen kind attaches to. */
  target: string | null;
  /** Why the kinds that were tried and failed did not work, `kind: reason`. */
  why: string[];
}

export interface DaemonRun {
  exit: number | null;
  /** A tuning line ("Due to ...") appeared while the daemon ran. */
  tuned: boolean;
  /** Still running when the window ended (and so stopped by our SIGTERM). */
  alive: boolean;
  /**
   * Seconds since the daemon was started (`<dir>/timings`): up (its first line), started (every
   * hook attached), window (SIGTERM sent), exit, done; and start-up, the daemon's own figure for
   * its start ("start-up took N ms", BPFPILOT_START_TIMING). Empty when not recorded.
   */
  timings: Record<string, number>;
}

export interface FaultRun extends DaemonRun {
  target: string;
  /** stderr has a line naming the hook and saying it failed. */
  reported: boolean;
}

export interface KernelResult {
  label: string;
  release: string;
  pkg: string;
  mode: "qemu" | "host";
  result: "pass" | "fail" | "skip";
  reason: string;
  /** Every check that failed, with the exact product lines where there are any. */
  failures: string[];
  notes: string[];
  support: Record<string, unknown> | null;
  hooks: HookRow[];
  daemon: DaemonRun | null;
  fault: FaultRun[] | null;
  secs: number | null;
  tries: number | null;
  /** Seconds per step inside the guest (support, daemon, fault), from `out/timings`. */
  timings: Record<string, number>;
}

const read = (path: string): string | null => {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
};
const firstLine = (text: string | null): string => (text ?? "").trim().split("\n")[0] ?? "";
const lastLines = (text: string | null, n: number): string[] =>
  (text ?? "").split("\n").map((l) => l.trimEnd()).filter((l) => l !== "").slice(-n);

/** Parses the harness's `meta` file (key=value per line). */
export function parseMeta(text: string): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) meta[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return meta;
}

/** Hook rows from `support --json`; tolerant of missing fields (the product is young). */
export function hookRows(support: Record<string, unknown>): HookRow[] {
  const hooks = Array.isArray(support.hooks) ? support.hooks : [];
  return hooks.map((h: Record<string, unknown>) => {
    const tried = Array.isArray(h.tried) ? h.tried as Record<string, unknown>[] : [];
    return {
      tuner: String(h.tuner ?? "?"),
      hook: String(h.hook ?? "?"),
      chosen: typeof h.chosen === "string" ? h.chosen : null,
      target: typeof h.target === "string" ? h.target : null,
      why: tried.filter((t) => t.ok !== true).map((t) => `${t.kind}: ${t.reason ?? "failed"}`),
    };
  });
}

/**
 * Daemon lines that break the probe's promise: a program failing to load ("failed to load",
 * "load failed"), or a hook the probe chose reported unavailable/failed/rejected. Lines about the
 * `injected` hook (fault injection) are expected and left out, and so are lines reporting a hook
 * unavailable that the probe found no kind for (the daemon agrees with it, quoting the same
 * load failure, e.g. net_buffer's drop-reason programs on 5.10).
 */
export function brokenPromises(output: string, hooks: HookRow[], injected?: string): string[] {
  const chosen = hooks.filter((h) => h.chosen !== null && h.hook !== injected);
  const none = hooks.filter((h) => h.chosen === null);
  const names = (l: string, hook: string) => new RegExp(`\\bhook ${hook}\\b`).test(l);
  return output.split("\n").map((l) => l.trim()).filter((l) => {
    if (injected !== undefined && names(l, injected)) return false;
    if (none.some((h) => names(l, h.hook)) && /\bunavailable\b/.test(l)) return false;
    if (/failed to load|load failed/i.test(l)) return true;
    return chosen.some((h) => names(l, h.hook)) && /unavailable|fail|reject/i.test(l);
  });
}

/** A daemon run's steps (`timings`, from the guest script) and its own start-up figure. */
export function runTimings(dir: string, output: string): Record<string, number> {
  const t = Object.fromEntries(
    Object.entries(parseMeta(read(join(dir, "timings")) ?? "")).map(([k, v]) => [k, Number(v)]),
  );
  const start = /start-up took (\d+) ms/.exec(output);
  if (start) t["start-up"] = Math.round(Number(start[1]) / 100) / 10;
  return t;
}

/** "up 7.1, started 25.3, ..." */
const describeSteps = (t: Record<string, number>): string =>
  Object.entries(t).map(([k, v]) => `${k} ${v}`).join(", ");

/** Judges one daemon run; `injected` is the hook whose failure was forced (its lines are expected). */
function judgeDaemon(
  dir: string,
  r: KernelResult,
  what: string,
  injected?: string,
): DaemonRun {
  const failures = r.failures;
  const output = (read(join(dir, "stderr")) ?? "") + "\n" + (read(join(dir, "stdout")) ?? "");
  const rcText = read(join(dir, "rc"));
  const exit = rcText === null ? null : Number(rcText.trim());
  const alive = firstLine(read(join(dir, "alive"))) === "yes";
  const run = { exit, tuned: /Due to /.test(output), alive, timings: runTimings(dir, output) };
  const tail = lastLines(read(join(dir, "stderr")), 3).map((l) => `    | ${l}`).join("\n");
  if (!alive) {
    failures.push(`${what}: exited ${exit} before the window ended\n${tail}`);
  } else if (existsSync(join(dir, "hung"))) {
    failures.push(`${what}: did not exit within 20 s of SIGTERM (killed)`);
  } else if (exit !== 0) {
    failures.push(`${what}: exited ${exit} after SIGTERM\n${tail}`);
  }
  for (const line of brokenPromises(output, r.hooks, injected)) {
    failures.push(`${what}: the probe said this would load: ${line}`);
  }
  return run;
}

/**
 * route_table against what the guest's IPv6 destination cache did (`out/route`, written by
 * guest-product: max_size set low, PMTU exceptions to many destinations). Notes its changes or
 * why it is unavailable, and fails where tuner and kernel disagree: "not enforced" while the kernel
 * refused entries ("Route cache is full"), or active while max_size limited the cache and never
 * grew. A workload that stayed under max_size proves nothing and is only noted.
 */
export function routeTableVerdict(
  stderr: string,
  routeText: string | null,
): { notes: string[]; failures: string[] } {
  const notes: string[] = [], failures: string[] = [];
  const unavailable = /tuner (route_table) is unavailable: (.*)$/m.exec(stderr);
  if (unavailable) notes.push(`${unavailable[1]} unavailable: ${unavailable[2]}`);
  const grew = stderr.match(/change net\.ipv6\.route\.max_size from \d+ -> \d+/g) ?? [];
  if (grew.length > 0) notes.push(`route_table: ${grew.length} change(s), last: ${grew.at(-1)}`);
  const r = parseMeta(routeText ?? "");
  if (r.dst_entries === undefined) return { notes, failures };
  const [set, entries, refused] = [r.max_size_set, r.dst_entries, r.refused].map(Number);
  notes.push(
    `route_table workload: ${r.destinations} destinations, ${r.exceptions} PMTU exceptions, ` +
      `${entries} dst entries, max_size ${set} -> ${r.max_size_end}, ${refused} refused`,
  );
  if (unavailable && /not enforced/.test(unavailable[2])) {
    if (refused > 0) {
      failures.push(
        `route_table says max_size is not enforced, but the kernel refused ${refused} entries ` +
          `("Route cache is full") at max_size ${set}`,
      );
    } else if (entries > set) {
      notes.push(`not enforced, confirmed: ${entries} dst entries > ${set}`);
    }
  } else if (
    /tuner route_table: (active|advising)/.test(stderr) && grew.length === 0 &&
    (refused > 0 || entries >= set)
  ) {
    failures.push(
      `route_table active, but max_size stayed ${set} with ${entries} dst entries ` +
        `(${refused} refused)`,
    );
  }
  return { notes, failures };
}

/**
 * route_table forced on where it is unavailable (`out/route-forced/`, `out/route.forced`:
 * guest-product's BPFPILOT_FAULT_INJECT=route_table:available run, alone, with -R, under fresh
 * PMTU exceptions): its hook must fire, max_size grow with bpftune's line, and -R put it back.
 */
export function routeForcedVerdict(
  stderr: string,
  forcedText: string,
): { notes: string[]; failures: string[] } {
  const f = parseMeta(forcedText);
  const via = /tuner route_table: active; (.*)$/m.exec(stderr)?.[1] ?? "no hook attached";
  const changes = [...stderr.matchAll(/change net\.ipv6\.route\.max_size from (\d+) -> (\d+)/g)];
  const what = "route_table forced on (BPFPILOT_FAULT_INJECT=route_table:available)";
  if (changes.length === 0) {
    return {
      notes: [],
      failures: [
        `${what}: max_size never grew from ${f.max_size_set} with ${f.dst_entries ?? "?"} dst ` +
        `entries (${via})`,
      ],
    };
  }
  const failures = f.max_size_after_exit === f.max_size_set ? [] : [
    `${what}: -R left max_size at ${f.max_size_after_exit}, not ${f.max_size_set}`,
  ];
  return {
    notes: [
      `${what}: ${via}; max_size ${f.max_size_set} -> ${changes.at(-1)![2]} in ` +
      `${changes.length} change(s), ${f.max_size_after_exit} after -R`,
    ],
    failures,
  };
}

/** Judges the product guest script's artifacts in `out`. */
function judgeProduct(out: string, r: KernelResult, faultWanted: boolean): void {
  const rc = Number(firstLine(read(join(out, "support.rc"))) || "-1");
  const stderr = read(join(out, "support.stderr"));
  if (rc !== 0) {
    r.failures.push(`support --json exited ${rc}: ${lastLines(stderr, 3).join(" / ")}`);
  } else {
    try {
      r.support = JSON.parse(read(join(out, "support.json")) ?? "");
    } catch (e) {
      r.failures.push(`support --json printed no valid JSON (${(e as Error).message})`);
    }
  }
  if (r.support) {
    r.hooks = hookRows(r.support);
    const level = r.support.level;
    if (level === "none") r.failures.push("support level is none: no tuner can run");
    for (const h of r.hooks.filter((h) => h.chosen === null)) {
      r.notes.push(`${h.tuner}/${h.hook}: no hook (${h.why.join("; ")})`);
    }
  }
  const daemonDir = join(out, "daemon");
  if (existsSync(join(daemonDir, "absent"))) {
    r.notes.push("daemon not in the bundle yet (`run` is an unknown command): daemon not checked");
  } else if (existsSync(join(daemonDir, "rc"))) {
    r.daemon = judgeDaemon(daemonDir, r, "daemon");
    if (!r.daemon.tuned) r.notes.push('no tuning line ("Due to ") in the window (best effort)');
    const route = routeTableVerdict(
      read(join(daemonDir, "stderr")) ?? "",
      read(join(out, "route")),
    );
    r.notes.push(...route.notes);
    r.failures.push(...route.failures);
  }
  const forcedDir = join(out, "route-forced");
  if (existsSync(join(forcedDir, "rc"))) {
    judgeDaemon(forcedDir, r, "route_table forced on");
    const forced = routeForcedVerdict(
      read(join(forcedDir, "stderr")) ?? "",
      read(join(out, "route.forced")) ?? "",
    );
    r.notes.push(...forced.notes);
    r.failures.push(...forced.failures);
  }
  const refused = read(join(out, "host-tune.refused"));
  if (refused) r.notes.push(`--host-tune not honoured: ${refused.trim()}`);
  else if ((read(join(out, "daemon.args")) ?? "").includes("--advise")) {
    r.notes.push("daemon ran with --advise (the host is shared; --host-tune makes it tune)");
  }
  const restored = read(join(out, "restored"));
  if (restored) r.notes.push(`host sysctls put back after the daemon: ${restored.trim()}`);
  if (!faultWanted || r.daemon === null) return;
  r.fault = [];
  const faultDir = join(out, "fault");
  const runs = existsSync(faultDir)
    ? [...Deno.readDirSync(faultDir)].map((e) => e.name).sort((a, b) => +a - +b)
    : [];
  if (runs.length === 0) r.failures.push("fault injection: no chosen hook to inject a fault into");
  for (const n of runs) {
    const dir = join(faultDir, n);
    const target = firstLine(read(join(dir, "target")));
    const hook = target.slice(target.indexOf(":") + 1);
    const what = `fault ${target}`;
    const run = judgeDaemon(dir, r, what, hook);
    const stderrText = read(join(dir, "stderr")) ?? "";
    const reported = stderrText.split("\n").some((l) =>
      l.includes(hook) && /fail|unavailable|fault inject/i.test(l)
    );
    if (!reported) r.failures.push(`${what}: no stderr line names ${hook} as failed/unavailable`);
    r.fault.push({ ...run, target, reported });
  }
}

/** Why a guest died without reporting: the last crash line of its console, if any. */
function crashLine(consoleLog: string | null): string {
  const lines = (consoleLog ?? "").split("\n");
  const crash = lines.filter((l) => /Kernel panic|Oops|BUG:|KM_FATAL|double fault/.test(l));
  return crash.length > 0 ? `: ${crash[crash.length - 1].trim()}` : "";
}

/** The script's last console lines (the harness's own KM_ markers left out), indented. */
function consoleTail(consoleLog: string | null): string {
  const tail = lastLines(consoleLog, 8).filter((l) => !/^KM_[A-Z]+ /.test(l)).slice(-3);
  return tail.length > 0 ? "\n" + tail.map((l) => `    | ${l}`).join("\n") : "";
}

/** Judges one kernel's result directory. */
export function judge(dir: string): KernelResult {
  const meta = parseMeta(read(join(dir, "meta")) ?? "");
  const out = join(dir, "out");
  const r: KernelResult = {
    label: meta.label ?? "?",
    release: firstLine(read(join(out, "uname"))) || (meta.release ?? "?"),
    pkg: meta.pkg ?? "-",
    mode: meta.mode === "host" ? "host" : "qemu",
    result: "fail",
    reason: "",
    failures: [],
    notes: [],
    support: null,
    hooks: [],
    daemon: null,
    fault: null,
    secs: meta.secs ? Number(meta.secs) : null,
    tries: meta.tries ? Number(meta.tries) : null,
    timings: Object.fromEntries(
      Object.entries(parseMeta(read(join(out, "timings")) ?? "")).map(([k, v]) => [k, Number(v)]),
    ),
  };
  const status = Number(meta.status ?? "-1");
  const result = firstLine(read(join(out, "result")));
  const consoleLog = read(join(dir, "console.log"));
  if (meta.status === undefined) {
    r.failures.push("not run (no meta file: the harness was interrupted)");
  } else if (r.mode === "qemu" && status === 99) {
    r.failures.push(`guest died without reporting after ${r.tries} tries${crashLine(consoleLog)}`);
  } else if (r.mode === "qemu" && status === 98) {
    r.failures.push(`guest script still running at the ${meta.timeout} s timeout (killed)`);
  } else if (r.mode === "qemu" && status === 2) {
    r.failures.push(`harness error: ${lastLines(consoleLog, 1).join("") || "see meta"}`);
  } else if (result.startsWith("skip")) {
    r.result = "skip";
    r.reason = result.slice(5);
    return r;
  } else if (firstLine(read(join(out, "kind"))) === "product") {
    judgeProduct(out, r, meta.fault === "1");
    if (status !== 0) r.failures.push(`guest script exited ${status}${consoleTail(consoleLog)}`);
  } else if (result.startsWith("pass") || result.startsWith("fail")) {
    (result.startsWith("pass") ? r.notes : r.failures).push(result.slice(5));
    if (status !== 0 && result.startsWith("pass")) r.failures.push(`script exited ${status}`);
  } else if (status !== 0) {
    r.failures.push(`script exited ${status}${consoleTail(consoleLog)}`);
  }
  r.result = r.failures.length === 0 ? "pass" : "fail";
  r.reason = r.failures.length > 0
    ? r.failures.map((f) => f.split("\n")[0]).join("; ")
    : summary(r);
  return r;
}

function summary(r: KernelResult): string {
  const parts: string[] = [];
  if (r.support) parts.push(`support ${r.support.level}`);
  if (r.daemon) parts.push(`daemon exit ${r.daemon.exit}, tuned ${r.daemon.tuned ? "yes" : "no"}`);
  if (r.fault) parts.push(`fault injection ${r.fault.length} hooks ok`);
  if (parts.length === 0) parts.push(...r.notes);
  return parts.join(", ");
}

const pad = (s: string, n: number) => s.length >= n ? s + " " : s + " ".repeat(n - s.length);

/** The human-readable matrix. */
export function renderMatrix(results: KernelResult[]): string {
  const w = Math.max(24, ...results.map((r) => r.release.length + r.label.length + 4));
  const lines = [
    pad("KERNEL", w) + pad("RESULT", 7) + pad("TUNER", 14) + pad("HOOK", 24) + "CHOSEN / WHY NOT",
  ];
  for (const r of results) {
    const name = `${r.release} (${r.label})`;
    const steps = describeSteps(r.timings);
    const tries = (r.tries ?? 1) > 1 ? `, ${r.tries} tries` : "";
    const time = r.secs === null ? "" : `  [${r.secs} s${steps ? `: ${steps}` : ""}${tries}]`;
    if (r.hooks.length === 0) {
      lines.push(pad(name, w) + pad(r.result, 7) + r.reason + time);
    }
    r.hooks.forEach((h, i) => {
      const chosen = h.chosen === null
        ? `none (${h.why.join("; ") || "no kind tried"})`
        : `${h.chosen}${h.target ? ` ${h.target}` : ""}`;
      lines.push(
        pad(i === 0 ? name : "", w) + pad(i === 0 ? r.result : "", 7) + pad(h.tuner, 14) +
          pad(h.hook, 24) + chosen,
      );
    });
    if (r.hooks.length > 0) lines.push(`${" ".repeat(w + 7)}${r.reason}${time}`);
    for (const f of r.failures) lines.push(`  FAIL ${f}`);
    for (const n of r.notes.filter((n) => n !== r.reason)) lines.push(`  note ${n}`);
    for (const f of r.fault ?? []) {
      const steps = describeSteps(f.timings);
      lines.push(
        `  fault ${f.target}: alive ${f.alive ? "yes" : "no"}, exit ${f.exit}, reported ${
          f.reported ? "yes" : "no"
        }${steps ? ` [${steps}]` : ""}`,
      );
    }
  }
  const counts = ["pass", "fail", "skip"].map((k) =>
    `${results.filter((r) => r.result === k).length} ${k}`
  );
  lines.push("", counts.join(", "));
  return lines.join("\n") + "\n";
}

/** The --json document. */
export function toJson(results: KernelResult[]): string {
  return JSON.stringify(
    {
      kernels: results.map((r) => ({
        release: r.release,
        label: r.label,
        pkg: r.pkg,
        mode: r.mode,
        result: r.result,
        reason: r.reason,
        failures: r.failures,
        notes: r.notes,
        support: r.support,
        daemon: r.daemon
          ? { exit: r.daemon.exit, tuned: r.daemon.tuned, timings: r.daemon.timings }
          : null,
        fault: r.fault,
        secs: r.secs,
        tries: r.tries,
        timings: r.timings,
      })),
    },
    null,
    2,
  );
}

if (import.meta.main) {
  let json = false;
  let matrixFile: string | null = null;
  const dirs: string[] = [];
  for (let i = 0; i < Deno.args.length; i++) {
    const a = Deno.args[i];
    if (a === "--json") json = true;
    else if (a === "--matrix") matrixFile = Deno.args[++i];
    else dirs.push(a);
  }
  const results = dirs.map(judge);
  const matrix = renderMatrix(results);
  if (matrixFile) Deno.writeTextFileSync(matrixFile, matrix);
  if (json) {
    console.error(matrix);
    console.log(toJson(results));
  } else {
    console.log(matrix);
  }
  Deno.exit(results.every((r) => r.result !== "fail") ? 0 : 1);
}
