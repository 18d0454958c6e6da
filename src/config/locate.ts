/**
 * Line numbers of the keys in a TOML text, for messages: the parser returns plain values without
 * positions, so the key lines are found by a scan of table headers and `key =` lines (multi-line
 * strings skipped). A key not found (inside an inline table) is reported at its parent's line.
 */

/** The segments of a dotted TOML key (`sysctl."net.ipv4.tcp_rmem"`), or null if not one. */
export function keySegments(text: string): string[] | null {
  const out: string[] = [];
  let rest = text.trim();
  for (;;) {
    let m: RegExpMatchArray | null;
    if ((m = rest.match(/^[A-Za-z0-9_-]+/))) out.push(m[0]);
    else if ((m = rest.match(/^"((?:[^"\\]|\\.)*)"/))) out.push(JSON.parse(`"${m[1]}"`));
    else if ((m = rest.match(/^'([^']*)'/))) out.push(m[1]);
    else return null;
    rest = rest.slice(m[0].length).trimStart();
    if (rest === "") return out;
    if (!rest.startsWith(".")) return null;
    rest = rest.slice(1).trimStart();
  }
}

const pathKey = (segments: readonly string[]) => segments.join("\0");

export class KeyLines {
  readonly #lines = new Map<string, number>();

  constructor(text: string) {
    let table: string[] = [];
    let inString: string | null = null;
    text.split("\n").forEach((raw, i) => {
      const line = raw.replace(/\r$/, "");
      if (inString) {
        if (line.includes(inString)) inString = null;
        return;
      }
      const header = line.match(/^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$/);
      if (header) {
        const segs = keySegments(header[1]);
        if (segs) {
          table = segs;
          this.#set(table, i + 1);
        }
        return;
      }
      const assign = line.match(
        /^\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*=(.*)$/,
      );
      if (!assign) return;
      const segs = keySegments(assign[1]);
      if (segs) this.#set([...table, ...segs], i + 1);
      const value = assign[2];
      for (const q of ['"""', "'''"]) {
        const at = value.indexOf(q);
        if (at >= 0 && value.indexOf(q, at + 3) < 0) inString = q;
      }
    });
  }

  #set(segments: readonly string[], line: number): void {
    const k = pathKey(segments);
    if (!this.#lines.has(k)) this.#lines.set(k, line);
  }

  /** The line of `segments`, else of its closest located parent, else null. */
  lineOf(segments: readonly string[]): number | null {
    for (let n = segments.length; n > 0; n--) {
      const line = this.#lines.get(pathKey(segments.slice(0, n)));
      if (line !== undefined) return line;
    }
    return null;
  }
}
