/**
 * A strict parser for the OpenMetrics 1.0 text format, for tests: it throws on anything the
 * spec forbids that our exporter could plausibly get wrong (missing `# EOF`, bad escapes,
 * interleaved families, counters without `_total`, units that are not name suffixes, duplicate
 * series, invalid numbers). Histograms, summaries and exemplars are not supported and rejected.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  /** Numeric value; `raw` keeps the text (exact for integers beyond 2^53). */
  value: number;
  raw: string;
}

export interface Family {
  name: string;
  type: string;
  help?: string;
  unit?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const NUMBER = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;
const TYPES = new Set(["gauge", "counter", "info", "stateset", "unknown"]);

class ParseError extends Error {
  constructor(line: number, message: string) {
    super(`OpenMetrics line ${line}: ${message}`);
    this.name = "OpenMetricsParseError";
  }
}

function unescape(text: string, allowQuote: boolean, line: number): string {
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
    else throw new ParseError(line, `invalid escape \\${next ?? "(end)"}`);
  }
  return out;
}

/** Parses `{a="x",b="y"}` starting at text[0] === "{"; returns labels and the rest. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  if (text[i] === "}") return { labels, rest: text.slice(i + 1) };
  while (true) {
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new ParseError(line, "label without '='");
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new ParseError(line, `invalid label name ${name}`);
    if (Object.hasOwn(labels, name)) throw new ParseError(line, `duplicate label ${name}`);
    if (text[eq + 1] !== '"') throw new ParseError(line, `label ${name} value not quoted`);
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
    if (j >= text.length) throw new ParseError(line, `unterminated value of label ${name}`);
    labels[name] = unescape(raw, true, line);
    i = j + 1;
    if (text[i] === "}") return { labels, rest: text.slice(i + 1) };
    if (text[i] !== ",") throw new ParseError(line, "expected ',' or '}' after a label");
    i++;
  }
}

function sampleBelongs(family: Family, sampleName: string): boolean {
  switch (family.type) {
    case "counter":
      return sampleName === `${family.name}_total` || sampleName === `${family.name}_created`;
    case "info":
      return sampleName === `${family.name}_info`;
    default:
      return sampleName === family.name;
  }
}

/** Parses an exposition; returns the families in order, keyed by name. */
export function parseOpenMetrics(text: string): Map<string, Family> {
  if (!text.endsWith("# EOF\n") && !text.endsWith("# EOF")) {
    throw new ParseError(0, "exposition does not end with '# EOF'");
  }
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const seriesSeen = new Set<string>();
  let current: Family | undefined;
  let sawSample = false;

  const open = (name: string, lineNo: number): Family => {
    if (current?.name === name) return current;
    if (current) closed.add(current.name);
    if (closed.has(name) || families.has(name)) {
      throw new ParseError(lineNo, `family ${name} interleaved with another family`);
    }
    if (!METRIC_NAME.test(name)) throw new ParseError(lineNo, `invalid metric name ${name}`);
    current = { name, type: "unknown", samples: [] };
    families.set(name, current);
    sawSample = false;
    return current;
  };

  for (let index = 0; index < lines.length; index++) {
    const lineNo = index + 1;
    const line = lines[index];
    if (line === "# EOF") {
      if (index !== lines.length - 1) throw new ParseError(lineNo, "content after '# EOF'");
      break;
    }
    if (line === "") throw new ParseError(lineNo, "empty line");
    if (line.startsWith("#")) {
      const match = /^# (TYPE|HELP|UNIT) (\S+)(?: (.*))?$/.exec(line);
      if (!match) throw new ParseError(lineNo, `invalid comment line: ${line}`);
      const [, keyword, name, rest = ""] = match;
      const family = open(name, lineNo);
      if (sawSample) throw new ParseError(lineNo, `${keyword} after samples of ${name}`);
      if (keyword === "TYPE") {
        if (!TYPES.has(rest)) throw new ParseError(lineNo, `unsupported type ${rest}`);
        if (family.type !== "unknown") throw new ParseError(lineNo, `second TYPE for ${name}`);
        family.type = rest;
      } else if (keyword === "HELP") {
        if (family.help !== undefined) throw new ParseError(lineNo, `second HELP for ${name}`);
        family.help = unescape(rest, false, lineNo);
      } else {
        if (family.unit !== undefined) throw new ParseError(lineNo, `second UNIT for ${name}`);
        if (!name.endsWith(`_${rest}`)) {
          throw new ParseError(lineNo, `unit ${rest} is not a suffix of ${name}`);
        }
        family.unit = rest;
      }
      continue;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nameMatch) throw new ParseError(lineNo, `invalid sample line: ${line}`);
    const sampleName = nameMatch[0];
    let rest = line.slice(sampleName.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith("{")) ({ labels, rest } = parseLabels(rest, lineNo));
    const fields = rest.split(" ");
    if (fields[0] !== "" || fields.length < 2 || fields.length > 3) {
      throw new ParseError(lineNo, `expected ' value [timestamp]' after ${sampleName}`);
    }
    const raw = fields[1];
    if (!NUMBER.test(raw)) throw new ParseError(lineNo, `invalid value ${raw}`);
    if (fields.length === 3 && !NUMBER.test(fields[2])) {
      throw new ParseError(lineNo, `invalid timestamp ${fields[2]}`);
    }
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    // A sample continues the current family if it belongs to it, else it opens an unknown one.
    const family = current && sampleBelongs(current, sampleName)
      ? current
      : open(sampleName, lineNo);
    if (!sampleBelongs(family, sampleName)) {
      throw new ParseError(
        lineNo,
        `sample ${sampleName} does not fit ${family.type} ${family.name}`,
      );
    }
    if (family.type === "counter" && !(value >= 0)) {
      throw new ParseError(lineNo, `counter ${sampleName} has invalid value ${raw}`);
    }
    if (family.type === "info" && value !== 1) {
      throw new ParseError(lineNo, `info ${sampleName} must be 1, is ${raw}`);
    }
    const key = `${sampleName}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seriesSeen.has(key)) throw new ParseError(lineNo, `duplicate series ${key}`);
    seriesSeen.add(key);
    family.samples.push({ name: sampleName, labels, value, raw });
    sawSample = true;
  }
  return families;
}
