/** "did you mean ...?" for a mistyped name: the closest known name within a small distance. */

/** Levenshtein distance (insert, delete, substitute; each costs 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** The known name closest to `name` (ignoring case, `_` vs `-`), if close enough to be a typo. */
export function closest(name: string, known: readonly string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replace(/_/g, "-");
  let best: string | null = null, bestD = Infinity;
  for (const k of known) {
    const d = editDistance(norm(name), norm(k));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== null && bestD <= Math.max(2, Math.floor(name.length / 4)) ? best : null;
}

/** " (did you mean 'x'?)" or "". */
export function didYouMean(name: string, known: readonly string[]): string {
  const c = closest(name, known);
  return c === null ? "" : ` (did you mean '${c}'?)`;
}
