/**
 * OpenMetrics text rendering of the daemon's state, and the optional loopback HTTP endpoint that
 * serves it to Prometheus. Rendering is a pure function of a plain snapshot so the daemon can
 * take the snapshot wherever it likes and tests can feed fixed ones.
 *
 * Naming follows https://prometheus.io/docs/practices/naming: one `bpfpilot_` prefix, base units
 * (`_bytes`, `_seconds`), `_total` on counters, label values escaped.
 */
import { VERSION } from "../version.ts";
import { type HttpLimits, OPENMETRICS_CONTENT_TYPE, serveMetricsHttp } from "./metrics_http.ts";

/**
 * Which namespaces' tunables the metrics show (--metrics-netns). `changed`: the daemon's own
 * namespace every tunable, any other only the sysctls bpfpilot changed there since it started or
 * still owns a journalled change of, so series and per-scrape reads grow with what bpfpilot did,
 * not with the number of containers. `all`: every tunable of every namespace the daemon knows.
 */
export const METRICS_NETNS = ["changed", "all"] as const;
export type MetricsNetns = typeof METRICS_NETNS[number];

/** A sysctl value as the kernel reports it; numeric strings are accepted, others are skipped. */
export type MetricValue = number | bigint | string;

export interface TunableMetric {
  sysctl: string;
  /** Network namespace label; absent means the initial ("global") namespace. */
  netns?: string;
  /** Current values; a multi-value sysctl (tcp_rmem) yields one sample per index. */
  values: MetricValue[];
  /** Changes bpfpilot made to it since the daemon started. */
  changes: number;
}

export interface ScenarioMetric {
  tuner: string;
  scenario: string;
  count: number;
}

export interface EventMetric {
  tuner: string;
  seen: number;
  dropped: number;
  /** Hook hits the kernel did not send because userspace muted their key (absent: unknown). */
  muted?: number;
  /** Muted events handed back to the tuner when their override ended (absent: unknown). */
  rehandled?: number;
}

export interface HookMetric {
  tuner: string;
  /** Attach point, e.g. `tcp/tcp_probe` or `sockops`. */
  hook: string;
  /** Program kind, e.g. `tracepoint`, `fentry`, `kprobe`, `cgroup_sockops`. */
  kind: string;
  attached: boolean;
}

export interface ProcessSample {
  residentBytes: number;
  cpuSeconds: number;
}

/** A tuner's own sample (TunerMetric): `bpfpilot_<name>`, labelled with the tuner. */
export interface TunerMetricSample {
  tuner: string;
  name: string;
  type: "counter" | "gauge";
  help: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricsSnapshot {
  tunables: TunableMetric[];
  /** Tuner-specific metrics (tcp_conn's choices per algorithm, ...). */
  tunerMetrics?: TunerMetricSample[];
  scenarios: ScenarioMetric[];
  events: EventMetric[];
  hooks: HookMetric[];
  process: ProcessSample;
}

/** Clock ticks per second in /proc/<pid>/stat: USER_HZ, fixed at 100 in the Linux ABI. */
const USER_HZ = 100;

/** CPU seconds (user + system, all threads) from the text of /proc/<pid>/stat. */
export function parseCpuSeconds(statText: string): number {
  // The command name (field 2) may contain spaces and parentheses: fields start after the last ')'.
  const fields = statText.slice(statText.lastIndexOf(")") + 2).split(" ");
  // After the name, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error("unexpected /proc/self/stat format");
  }
  return (utime + stime) / USER_HZ;
}

/** The daemon's own RSS and CPU time. */
export async function sampleProcess(): Promise<ProcessSample> {
  return {
    residentBytes: Deno.memoryUsage().rss,
    cpuSeconds: parseCpuSeconds(await Deno.readTextFile("/proc/self/stat")),
  };
}

export { OPENMETRICS_CONTENT_TYPE };

/** Escapes a label value: backslash, double quote and line feed (OpenMetrics ABNF). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatNumber(value: number | bigint): string {
  if (typeof value === "bigint") return value.toString();
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

const INTEGER_TEXT = /^-?[0-9]+$/;

/** Numeric value of a sysctl field, or undefined for string sysctls (nothing to graph). */
function numericValue(value: MetricValue): number | bigint | undefined {
  if (typeof value === "number" || typeof value === "bigint") return value;
  const text = value.trim();
  return INTEGER_TEXT.test(text) ? BigInt(text) : undefined;
}

function isCount(value: number): boolean {
  return Number.isFinite(value) && value >= 0;
}

type Labels = Record<string, string>;

/** Collects the samples of one metric family; duplicate label sets keep the first sample. */
class Family {
  private readonly lines: string[] = [];
  private readonly seen = new Set<string>();

  constructor(
    private readonly name: string,
    private readonly type: "gauge" | "counter" | "info",
    private readonly help: string,
    private readonly unit?: string,
  ) {}

  add(labels: Labels, value: number | bigint): void {
    const labelText = Object.entries(labels)
      .map(([key, val]) => `${key}="${escapeLabelValue(val)}"`)
      .join(",");
    if (this.seen.has(labelText)) return;
    this.seen.add(labelText);
    const suffix = this.type === "counter" ? "_total" : this.type === "info" ? "_info" : "";
    const labelPart = labelText === "" ? "" : `{${labelText}}`;
    this.lines.push(`${this.name}${suffix}${labelPart} ${formatNumber(value)}`);
  }

  render(): string[] {
    const head = [`# TYPE ${this.name} ${this.type}`];
    if (this.unit !== undefined) head.push(`# UNIT ${this.name} ${this.unit}`);
    head.push(`# HELP ${this.name} ${escapeHelp(this.help)}`);
    return [...head, ...this.lines];
  }
}

function netnsLabel(netns: string | undefined): string {
  return netns ?? "global";
}

/** Renders a snapshot as an OpenMetrics 1.0 text exposition, ending with `# EOF`. */
export function renderMetrics(snapshot: MetricsSnapshot): string {
  const build = new Family("bpfpilot_build", "info", "bpfpilot version information.");
  build.add({ version: VERSION }, 1);

  const value = new Family(
    "bpfpilot_tunable_value",
    "gauge",
    "Current value of a tunable; multi-value sysctls have one sample per field index.",
  );
  const changes = new Family(
    "bpfpilot_tunable_changes",
    "counter",
    "Changes bpfpilot made to a tunable since the daemon started.",
  );
  for (const tunable of snapshot.tunables) {
    const netns = netnsLabel(tunable.netns);
    tunable.values.forEach((raw, index) => {
      const number = numericValue(raw);
      if (number === undefined) return;
      value.add({ sysctl: tunable.sysctl, index: String(index), netns }, number);
    });
    if (isCount(tunable.changes)) {
      changes.add({ sysctl: tunable.sysctl, netns }, tunable.changes);
    }
  }

  const scenarios = new Family(
    "bpfpilot_scenario",
    "counter",
    "Times a tuner saw a scenario (a condition that calls for tuning).",
  );
  for (const s of snapshot.scenarios) {
    if (isCount(s.count)) scenarios.add({ tuner: s.tuner, scenario: s.scenario }, s.count);
  }

  const events = new Family("bpfpilot_events", "counter", "BPF events received by a tuner.");
  const dropped = new Family(
    "bpfpilot_events_dropped",
    "counter",
    "BPF events a tuner lost (ring buffer full or rate limited).",
  );
  const muted = new Family(
    "bpfpilot_events_muted",
    "counter",
    "Hook hits not sent as events: nothing they could change (at a ceiling, cooling down, " +
      "overridden), so userspace had muted them in the kernel.",
  );
  const rehandled = new Family(
    "bpfpilot_events_rehandled",
    "counter",
    "Muted events handed back to their tuner when the override they were muted for ended " +
      "(the kernel does not resend a signal that comes once, such as a buffer reaching its max).",
  );
  for (const e of snapshot.events) {
    if (isCount(e.seen)) events.add({ tuner: e.tuner }, e.seen);
    if (e.rehandled !== undefined && isCount(e.rehandled)) {
      rehandled.add({ tuner: e.tuner }, e.rehandled);
    }
    if (isCount(e.dropped)) dropped.add({ tuner: e.tuner }, e.dropped);
    if (e.muted !== undefined && isCount(e.muted)) muted.add({ tuner: e.tuner }, e.muted);
  }

  // Named as the brief asks; a gauge (not an OpenMetrics info) because 0 = not attached.
  const hooks = new Family(
    "bpfpilot_hook_info",
    "gauge",
    "Whether a tuner's BPF program is attached to its hook (1) or not (0).",
  );
  for (const h of snapshot.hooks) {
    hooks.add({ tuner: h.tuner, hook: h.hook, kind: h.kind }, h.attached ? 1 : 0);
  }

  const rss = new Family(
    "bpfpilot_process_resident_memory_bytes",
    "gauge",
    "Resident memory of the bpfpilot daemon.",
    "bytes",
  );
  if (isCount(snapshot.process.residentBytes)) rss.add({}, snapshot.process.residentBytes);
  const cpu = new Family(
    "bpfpilot_process_cpu_seconds",
    "counter",
    "User and system CPU time used by the bpfpilot daemon.",
    "seconds",
  );
  if (isCount(snapshot.process.cpuSeconds)) cpu.add({}, snapshot.process.cpuSeconds);

  const own = new Map<string, Family>();
  for (const m of snapshot.tunerMetrics ?? []) {
    if (!/^[a-z][a-z0-9_]*$/.test(m.name) || !isCount(m.value)) continue;
    let f = own.get(m.name);
    if (!f) own.set(m.name, f = new Family(`bpfpilot_${m.name}`, m.type, m.help));
    f.add({ tuner: m.tuner, ...m.labels }, m.value);
  }

  const families = [build, value, changes, scenarios, events, dropped, muted, rehandled, hooks];
  families.push(...own.values());
  families.push(rss, cpu);
  return families.flatMap((f) => f.render()).join("\n") + "\n# EOF\n";
}

// ---------------------------------------------------------------------------------------------
// HTTP endpoint

export class MetricsListenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MetricsListenError";
  }
}

export interface ListenAddress {
  hostname: string;
  port: number;
}

function isLoopback(hostname: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname) || hostname === "::1";
}

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT` or a bare `PORT` (→ 127.0.0.1). `localhost` is mapped to
 * 127.0.0.1 so that the resolver cannot widen the bind. Non-loopback hosts (including the
 * wildcard) are refused unless `allowNonLoopback`, because the endpoint has no authentication.
 */
export function parseListenAddress(
  addr: string,
  options: { allowNonLoopback?: boolean } = {},
): ListenAddress {
  const text = addr.trim();
  let hostname: string;
  let portText: string;
  const bracketed = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text);
  const hostPort = /^([^:\s[\]]*):(\d{1,5})$/.exec(text);
  const portOnly = /^(\d{1,5})$/.exec(text);
  if (bracketed !== null) {
    [, hostname, portText] = bracketed;
  } else if (hostPort !== null) {
    [, hostname, portText] = hostPort;
    // ":9101" means every interface, like other daemons read it.
    if (hostname === "") hostname = "0.0.0.0";
  } else if (portOnly !== null) {
    hostname = "127.0.0.1";
    portText = portOnly[1];
  } else {
    throw new MetricsListenError(
      `invalid metrics listen address ${JSON.stringify(addr)}: expected HOST:PORT, e.g. ` +
        `127.0.0.1:9101`,
    );
  }
  const port = Number(portText);
  if (port > 65535) {
    throw new MetricsListenError(`invalid metrics port ${port}: must be 0-65535`);
  }
  if (hostname === "localhost") hostname = "127.0.0.1";
  if (!isLoopback(hostname) && !options.allowNonLoopback) {
    throw new MetricsListenError(
      `refusing to serve metrics on non-loopback address ${hostname}: the endpoint has no ` +
        `authentication; use 127.0.0.1:${port}, or allow it explicitly if a firewall protects it`,
    );
  }
  return { hostname, port };
}

export interface MetricsServer {
  /** The bound address (the real port when 0 was asked for). */
  readonly hostname: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  allowNonLoopback?: boolean;
  /** Where render and accept failures are reported (a scrape itself gets a 500). */
  onError?: (message: string) => void;
  /** Connection cap, deadlines, cache lifetime (tests); default DEFAULT_HTTP_LIMITS. */
  limits?: HttpLimits;
}

/**
 * Serves `GET /metrics` with `render()`'s output (see metrics_http.ts for the limits that keep a
 * local user from exhausting the daemon). Binding happens before this returns, so an address in
 * use or a bad address is reported to the caller at once.
 */
export function startMetricsServer(
  addr: string,
  render: () => string | Promise<string>,
  options: MetricsServerOptions = {},
): MetricsServer {
  const { hostname, port } = parseListenAddress(addr, options);
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname, port, transport: "tcp" });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new MetricsListenError(
        `cannot serve metrics on ${hostname}:${port}: the port is already in use; pick another ` +
          `port`,
      );
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new MetricsListenError(
        `cannot serve metrics on ${hostname}:${port}: no local interface has that address`,
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new MetricsListenError(
        `cannot serve metrics on ${hostname}:${port}: permission denied (ports below 1024 need ` +
          `root or CAP_NET_BIND_SERVICE)`,
      );
    }
    throw new MetricsListenError(
      `cannot serve metrics on ${hostname}:${port}: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }
  return serveMetricsHttp(listener, render, options.onError ?? (() => {}), options.limits);
}
