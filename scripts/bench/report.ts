/** How bench figures are printed: one row each, the figure, then target and method. */

export function row(name: string, value: string, note = ""): void {
  console.log(`${name.padEnd(44)} ${value.padStart(14)}  ${note}`);
}

export function section(title: string): void {
  console.log(`-- ${title}`);
}

/** A note that puts the target first, so every row reads "target; how it was measured". */
export function withTarget(target: string, how: string): string {
  return `[target ${target}] ${how}`;
}

/** withTarget with the verdict: "[target ≤ 1 s: met] how" (MISSED; n/a when null). */
export function judged(target: string, met: boolean | null, how: string): string {
  return `[target ${target}: ${met === null ? "n/a" : met ? "met" : "MISSED"}] ${how}`;
}

export function fmtMs(ms: number): string {
  return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

export function fmtMb(kb: number): string {
  return `${(kb / 1024).toFixed(1)} MB`;
}

export function fmtPct(p: number): string {
  return `${p.toFixed(p < 1 ? 3 : 2)} %`;
}

export function fmtRate(perS: number, unit: string): string {
  return `${perS >= 100 ? perS.toFixed(0) : perS.toFixed(1)} ${unit}`;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A positive number from the environment, or the default (with a clear error on garbage). */
export function envSeconds(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`${name} must be a number of seconds > 0, not '${raw}'`);
  }
  return n;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
