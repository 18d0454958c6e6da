/**
 * Finds and opens the system libbpf. The search starts in the libdir layout of this system
 * (Debian multiarch, lib64, lib: baked in by a packager's build, else detected at run time), then
 * tries the other layouts, then the bare soname through the dynamic loader. So one binary per
 * architecture serves every distribution. libbpf older than 1.0 is refused before any other
 * symbol is bound.
 */
import { LIBBPF_SYMBOLS, type LibbpfSymbols, LIBC_SYMBOLS, type LibcSymbols } from "./symbols.ts";

export type LibdirLayout = "multiarch" | "lib64" | "lib";
export const LAYOUTS: readonly LibdirLayout[] = ["multiarch", "lib64", "lib"];

/** Replaced at bundle time by scripts/build.ts (esbuild --define) for a distribution's package. */
declare const BPFPILOT_LIBDIR_LAYOUT: string | undefined;

export class LibbpfUnavailableError extends Error {
  constructor(message: string, readonly tried: string[]) {
    super(message);
    this.name = "LibbpfUnavailableError";
  }
}

export interface Libbpf {
  bpf: LibbpfSymbols;
  libc: LibcSymbols;
  path: string;
  version: string;
  major: number;
  minor: number;
}

function multiarchTriplet(): string {
  return Deno.build.arch === "aarch64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
}

function layoutDirs(layout: LibdirLayout): string[] {
  switch (layout) {
    case "multiarch":
      return [`/usr/lib/${multiarchTriplet()}`, `/lib/${multiarchTriplet()}`];
    case "lib64":
      return ["/usr/lib64", "/lib64"];
    case "lib":
      return ["/usr/lib", "/lib"];
  }
}

export function builtLayout(): LibdirLayout | null {
  const v = typeof BPFPILOT_LIBDIR_LAYOUT === "string" ? BPFPILOT_LIBDIR_LAYOUT : undefined;
  return LAYOUTS.includes(v as LibdirLayout) ? v as LibdirLayout : null;
}

/** What layout detection needs to know about a path (lstat: a symlink is not a directory). */
export type PathKind = (path: string) => "dir" | "symlink" | "other" | "missing";

function lstatKind(path: string): ReturnType<PathKind> {
  try {
    const st = Deno.lstatSync(path);
    return st.isSymlink ? "symlink" : st.isDirectory ? "dir" : "other";
  } catch {
    return "missing";
  }
}

/**
 * This system's layout: a multiarch directory means Debian/Ubuntu; a real /usr/lib64 directory
 * means Fedora/RHEL/SUSE; otherwise (Arch/CachyOS, where /usr/lib64 is a symlink to /usr/lib)
 * libraries live in /usr/lib.
 */
export function detectLayout(kind: PathKind = lstatKind): LibdirLayout {
  if (kind(`/usr/lib/${multiarchTriplet()}`) === "dir") return "multiarch";
  if (kind("/usr/lib64") === "dir") return "lib64";
  return "lib";
}

/**
 * Candidate files in search order. BPFPILOT_LIBBPF names one exact file; BPFPILOT_LIBBPF_DIR
 * restricts the search to one directory (no system fallback: tests use it to put libbpf out of
 * reach). Sonames .so.1 come before .so.0 so a 0.x library is only found to be reported.
 */
export function libbpfCandidates(
  env: { get(k: string): string | undefined } = Deno.env,
  layout: LibdirLayout = builtLayout() ?? detectLayout(),
): string[] {
  const exact = env.get("BPFPILOT_LIBBPF");
  if (exact) return [exact];
  const onlyDir = env.get("BPFPILOT_LIBBPF_DIR");
  const dirs = onlyDir
    ? [onlyDir]
    : [layout, ...LAYOUTS.filter((l) => l !== layout)].flatMap(layoutDirs);
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
    if (cand.startsWith("/")) {
      try {
        Deno.statSync(cand);
      } catch {
        tried.push(`${cand}: not present`);
        continue;
      }
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
    const libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
    cached = { bpf: bpfLib.symbols, libc: libc.symbols, path, version, major, minor };
    return cached;
  }
  throw new LibbpfUnavailableError(
    `libbpf was not found. bpfpilot needs libbpf 1.0 or newer: Debian/Ubuntu \`apt install ` +
      `libbpf1\`, Fedora/RHEL \`dnf install libbpf\`, Arch \`pacman -S libbpf\`.\n` +
      `Looked for:\n${tried.map((t) => `  ${t}`).join("\n")}`,
    tried,
  );
}
