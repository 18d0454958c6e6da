/**
 * A small, strict OpenMetrics text parser for tests
 * (https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md).
 * It checks what exporters most often get wrong: metadata before samples, one TYPE/HELP per
 * family, families not interleaved, sample names matching their family's type, label syntax and
 * escaping, duplicate series, and a single `# EOF` as the last line. Exemplars are not supported.
 */

export type MetricType =
  | "counter"
  | "gauge"
  | "histogram"
  | "gaugehistogram"
  | "summary"
  | "info"
  | "stateset"
  | "unknown";

export interface Sample {
  /** Full sample name, e.g. `http_requests_total`. */
  name: string;
  labels: Record<string, string>;
  value: number;
  /** The value as written (exact for integers beyond 2^53). */
  raw: string;
  timestamp?: number;
  /** 1-based line number, for messages. */
  line: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help?: string;
  unit?: string;
  samples: Sample[];
}

export class OpenMetricsParseError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = "OpenMetricsParseError";
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = [
  "counter",
  "gauge",
  "histogram",
  "gaugehistogram",
  "summary",
  "info",
  "stateset",
  "unknown",
];

/** Sample-name suffixes each type allows after the family name. */
const SUFFIXES: Record<MetricType, readonly string[]> = {
  counter: ["_total", "_created"],
  gauge: [""],
  histogram: ["_bucket", "_count", "_sum", "_created"],
  gaugehistogram: ["_bucket", "_gcount", "_gsum"],
  summary: ["", "_count", "_sum", "_created"],
  info: ["_info"],
  stateset: [""],
  unknown: [""],
};

function parseValue(text: string, line: number): number {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new OpenMetricsParseError(line, `invalid number ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** Unescapes `\\`, `\"` and `\n` in HELP text and label values; any other escape is an error. */
function unescape(text: string, line: number, allowQuote: boolean): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const next = text[++i];
    if (next === "\\") out += "\\";
    else if (next === "n") out += "\n";
    else if (next === '"' && allowQuote) out += '"';
    else throw new OpenMetricsParseError(line, `invalid escape \\${next ?? ""}`);
  }
  return out;
}

/** Parses `{a="x",b="y"}` starting at text[0] === "{"; returns labels and the rest of the line. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  if (text[i] === "}") return { labels, rest: text.slice(i + 1) };
  for (;;) {
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new OpenMetricsParseError(line, "label without '='");
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) {
      throw new OpenMetricsParseError(line, `invalid label name ${JSON.stringify(name)}`);
    }
    if (name in labels) throw new OpenMetricsParseError(line, `duplicate label ${name}`);
    if (text[eq + 1] !== '"') {
      throw new OpenMetricsParseError(line, `label ${name} value not quoted`);
    }
    let j = eq + 2;
    let raw = "";
    while (j < text.length && text[j] !== '"') {
      if (text[j] === "\\") {
        raw += text.slice(j, j + 2);
        j += 2;
      } else {
        raw += text[j++];
      }
    }
    if (j >= text.length) {
      throw new OpenMetricsParseError(line, `unterminated value for label ${name}`);
    }
    labels[name] = unescape(raw, line, true);
    j++;
    if (text[j] === "}") return { labels, rest: text.slice(j + 1) };
    if (text[j] !== ",") {
      throw new OpenMetricsParseError(line, `expected ',' or '}' after label ${name}`);
    }
    i = j + 1;
  }
}

function familyOf(
  sampleName: string,
  families: Map<string, MetricFamily>,
): MetricFamily | undefined {
  for (const f of families.values()) {
    if (SUFFIXES[f.type].some((s) => f.name + s === sampleName)) return f;
  }
  return undefined;
}

export function parseOpenMetrics(text: string): MetricFamily[] {
  if (!text.endsWith("\n")) throw new OpenMetricsParseError(0, "text must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines[lines.length - 1] !== "# EOF") {
    throw new OpenMetricsParseError(lines.length, "the last line must be '# EOF'");
  }
  const families = new Map<string, MetricFamily>();
  const closed = new Set<string>();
  const seenSeries = new Set<string>();
  const typed = new Set<string>();
  let current: MetricFamily | undefined;
  const enter = (f: MetricFamily, line: number) => {
    if (current !== f) {
      if (closed.has(f.name)) {
        throw new OpenMetricsParseError(line, `family ${f.name} is interleaved with another`);
      }
      if (current) closed.add(current.name);
      current = f;
    }
  };
  lines.forEach((l, index) => {
    const line = index + 1;
    if (l === "# EOF") {
      if (line !== lines.length) throw new OpenMetricsParseError(line, "'# EOF' before the end");
      return;
    }
    if (l === "") throw new OpenMetricsParseError(line, "empty line");
    if (l.startsWith("#")) {
      const m = l.match(/^# (TYPE|HELP|UNIT) (\S+)(?: (.*))?$/);
      if (!m) throw new OpenMetricsParseError(line, `unknown comment ${JSON.stringify(l)}`);
      const [, kind, name, rest = ""] = m;
      if (!METRIC_NAME.test(name)) {
        throw new OpenMetricsParseError(line, `invalid metric name ${name}`);
      }
      let f = families.get(name);
      if (!f) {
        f = { name, type: "unknown", samples: [] };
        families.set(name, f);
      }
      enter(f, line);
      if (f.samples.length > 0) {
        throw new OpenMetricsParseError(line, `${kind} for ${name} after its samples`);
      }
      if (kind === "TYPE") {
        if (typed.has(name)) {
          throw new OpenMetricsParseError(line, `second TYPE for ${name}`);
        }
        if (!TYPES.includes(rest as MetricType)) {
          throw new OpenMetricsParseError(line, `unknown type ${rest}`);
        }
        f.type = rest as MetricType;
        typed.add(name);
      } else if (kind === "HELP") {
        if (f.help !== undefined) throw new OpenMetricsParseError(line, `second HELP for ${name}`);
        f.help = unescape(rest, line, false);
      } else {
        if (f.unit !== undefined) throw new OpenMetricsParseError(line, `second UNIT for ${name}`);
        if (rest !== "" && !name.endsWith(`_${rest}`)) {
          throw new OpenMetricsParseError(line, `metric ${name} must end with its unit _${rest}`);
        }
        f.unit = rest;
      }
      return;
    }
    const nameMatch = l.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/);
    if (!nameMatch) {
      throw new OpenMetricsParseError(line, `invalid sample line ${JSON.stringify(l)}`);
    }
    const name = nameMatch[0];
    let rest = l.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith("{")) ({ labels, rest } = parseLabels(rest, line));
    const parts = rest.split(" ");
    if (parts[0] !== "" || parts.length < 2 || parts.length > 3) {
      throw new OpenMetricsParseError(line, `expected "name{labels} value [timestamp]"`);
    }
    const value = parseValue(parts[1], line);
    const timestamp = parts[2] === undefined ? undefined : parseValue(parts[2], line);
    let f = familyOf(name, families);
    if (!f && families.has(name)) {
      const type = families.get(name)!.type;
      throw new OpenMetricsParseError(line, `sample ${name} does not fit ${type} family ${name}`);
    }
    if (!f) {
      // A sample without metadata is its own family of type unknown.
      f = { name, type: "unknown", samples: [] };
      families.set(name, f);
    }
    enter(f, line);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seenSeries.has(key)) {
      throw new OpenMetricsParseError(line, `duplicate series ${name}${JSON.stringify(labels)}`);
    }
    seenSeries.add(key);
    if (f.type === "counter" && name.endsWith("_total") && value < 0) {
      throw new OpenMetricsParseError(line, `counter ${name} is negative`);
    }
    f.samples.push({ name, labels, value, raw: parts[1], timestamp, line });
  });
  return [...families.values()];
}

/** The families by name (metadata name, e.g. `bpfpilot_events` for `bpfpilot_events_total`). */
export function familiesByName(text: string): Map<string, MetricFamily> {
  return new Map(parseOpenMetrics(text).map((f) => [f.name, f]));
}

/** The samples named `name` whose labels include every pair in `labels`. */
export function findSamples(
  families: readonly MetricFamily[],
  name: string,
  labels: Record<string, string> = {},
): Sample[] {
  return families.flatMap((f) => f.samples).filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
}
