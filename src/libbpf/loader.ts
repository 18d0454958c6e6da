/**
 * Finds and opens the system libbpf, searching the system's libdirs (src/kernel/libdirs.ts).
 * libbpf older than 1.0 is refused before any other symbol is bound.
 */
import { LIBBPF_SYMBOLS, type LibbpfSymbols } from "./symbols.ts";
import { type Libc, libcOrError } from "../kernel/libc.ts";
import { candidatePresent, type LibdirLayout, systemLibdirs } from "../kernel/libdirs.ts";

export { detectLayout, type LibdirLayout, type PathKind } from "../kernel/libdirs.ts";

export class LibbpfUnavailableError extends Error {
  constructor(message: string, readonly tried: string[]) {
    super(message);
    this.name = "LibbpfUnavailableError";
  }
}

export interface Libbpf {
  bpf: LibbpfSymbols;
  libc: Libc;
  path: string;
  version: string;
  major: number;
  minor: number;
}

/**
 * Candidate files in search order. BPFPILOT_LIBBPF names one exact file; BPFPILOT_LIBBPF_DIR
 * restricts the search to one directory (no system fallback: tests use it to put libbpf out of
 * reach). Sonames .so.1 come before .so.0 so a 0.x library is only found to be reported.
 */
export function libbpfCandidates(
  env: { get(k: string): string | undefined } = Deno.env,
  layout?: LibdirLayout,
): string[] {
  const exact = env.get("BPFPILOT_LIBBPF");
  if (exact) return [exact];
  const onlyDir = env.get("BPFPILOT_LIBBPF_DIR");
  const dirs = onlyDir ? [onlyDir] : systemLibdirs(layout);
  const out: string[] = [];
  for (const soname of ["libbpf.so.1", "libbpf.so.0"]) {
    for (const d of dirs) out.push(`${d}/${soname}`);
    if (!onlyDir) out.push(soname);
  }
  return out;
}

const VERSION_PROBE = {
  libbpf_major_version: LIBBPF_SYMBOLS.libbpf_major_version,
  libbpf_minor_version: LIBBPF_SYMBOLS.libbpf_minor_version,
} as const;

function realPath(p: string): string {
  try {
    return Deno.realPathSync(p);
  } catch {
    return p;
  }
}

/** For a bare soname, the file the dynamic loader actually mapped. */
function mappedFile(soname: string): string | null {
  try {
    const maps = Deno.readTextFileSync("/proc/self/maps");
    const hit = maps.split("\n").find((l) => l.includes(`/${soname}`) || l.includes("/libbpf.so"));
    return hit ? hit.slice(hit.indexOf("/")) : null;
  } catch {
    return null;
  }
}

let cached: Libbpf | null = null;

export function openLibbpf(): Libbpf {
  if (cached) return cached;
  const tried: string[] = [];
  const candidates = libbpfCandidates();
  for (const cand of candidates) {
    if (!candidatePresent(cand)) {
      tried.push(`${cand}: not present`);
      continue;
    }
    let probe: Deno.DynamicLibrary<typeof VERSION_PROBE>;
    try {
      probe = Deno.dlopen(cand, VERSION_PROBE);
    } catch (e) {
      tried.push(`${cand}: ${(e as Error).message.split("\n")[0]}`);
      continue;
    }
    const path = cand.startsWith("/") ? realPath(cand) : (mappedFile(cand) ?? cand);
    const major = probe.symbols.libbpf_major_version?.() ?? 0;
    const minor = probe.symbols.libbpf_minor_version?.() ?? 0;
    probe.close();
    const version = major === 0 && minor === 0 ? "older than 0.6" : `${major}.${minor}`;
    if (major < 1) {
      throw new LibbpfUnavailableError(
        `libbpf at ${path} is version ${version}; bpfpilot needs libbpf 1.0 or newer ` +
          `(0.x returns error pointers and changed functions under the same name). ` +
          `Install libbpf 1.x: Debian/Ubuntu \`apt install libbpf1\`, Fedora/RHEL ` +
          `\`dnf install libbpf\`, Arch \`pacman -S libbpf\`.`,
        [...tried, `${cand}: version ${version} (too old)`],
      );
    }
    let bpfLib: Deno.DynamicLibrary<typeof LIBBPF_SYMBOLS>;
    try {
      bpfLib = Deno.dlopen(cand, LIBBPF_SYMBOLS);
    } catch (e) {
      throw new LibbpfUnavailableError(
        `libbpf at ${path} (version ${version}) lacks a function bpfpilot needs: ` +
          `${(e as Error).message.split("\n")[0]}. Install an unmodified libbpf 1.x.`,
        [...tried, `${cand}: incomplete`],
      );
    }
    const libc = libcOrError();
    if (libc instanceof Error) {
      throw new LibbpfUnavailableError(libc.message, [...tried, `${cand}: found, but no libc`]);
    }
    cached = { bpf: bpfLib.symbols, libc, path, version, major, minor };
    return cached;
  }
  throw new LibbpfUnavailableError(
    `libbpf was not found. bpfpilot needs libbpf 1.0 or newer: Debian/Ubuntu \`apt install ` +
      `libbpf1\`, Fedora/RHEL \`dnf install libbpf\`, Arch \`pacman -S libbpf\`.\n` +
      `Looked for:\n${tried.map((t) => `  ${t}`).join("\n")}`,
    tried,
  );
}
