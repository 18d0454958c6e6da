/**
 * The values the administrator sets at boot: sysctl.d files read the way systemd-sysctl reads
 * them (sysctl.d(5)), so bpfpilot can leave those sysctls alone.
 *
 * - `*.conf` in /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d and
 *   /lib/sysctl.d; a file name in an earlier directory masks the same name in a later one (a
 *   symlink to /dev/null or an empty file masks it for good);
 * - all files are applied in the lexicographic order of their names, whatever their directory,
 *   and a later assignment of a key wins; /etc/sysctl.conf comes last (as `sysctl --system`);
 * - `key = value` lines; `#` and `;` start comments; a leading `-` only silences errors;
 *   `a/b/c` is `a.b.c`; keys may be globs (`net.ipv4.conf.*.rp_filter`); a leading `!` on a glob
 *   excludes names from earlier globs (systemd 254).
 */
import { canonicalSysctlName } from "./sysctl.ts";

export const SYSCTL_D_DIRS = [
  "/etc/sysctl.d",
  "/run/sysctl.d",
  "/usr/local/lib/sysctl.d",
  "/usr/lib/sysctl.d",
  "/lib/sysctl.d",
] as const;
export const SYSCTL_CONF = "/etc/sysctl.conf";

export interface PinnedValue {
  /** The value as written in the file (whitespace collapsed). */
  value: string;
  /** The file (as found under its directory) and line that set it last. */
  file: string;
  line: number;
}

export interface BootSysctls {
  /** Exact keys, canonical (`net.ipv4.tcp_rmem`). */
  exact: Map<string, PinnedValue>;
  /** Glob keys in file order; `exclude` removes earlier matches. */
  globs: { pattern: RegExp; source: string; pinned: PinnedValue; exclude: boolean }[];
  /** Files read, in the order applied. */
  files: string[];
  /** Lines that could not be understood: `file:line: why`. */
  problems: string[];
}

/** What set `sysctl` at boot, or null. */
export function pinnedBy(boot: BootSysctls, sysctl: string): PinnedValue | null {
  const name = canonicalSysctlName(sysctl);
  const exact = boot.exact.get(name);
  let fromGlob: PinnedValue | null = null;
  for (const g of boot.globs) {
    if (!g.pattern.test(name)) continue;
    fromGlob = g.exclude ? null : g.pinned;
  }
  if (!exact) return fromGlob;
  if (!fromGlob) return exact;
  // The later of the two assignments wins (files applied in order, lines in order).
  return order(boot, fromGlob) > order(boot, exact) ? fromGlob : exact;
}

function order(boot: BootSysctls, p: PinnedValue): number {
  return boot.files.indexOf(p.file) * 1e6 + p.line;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, "[^]*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** systemd's key normalisation: a key whose first separator is '/' swaps '/' and '.'. */
function normaliseKey(key: string): string {
  const slash = key.indexOf("/"), dot = key.indexOf(".");
  if (slash >= 0 && (dot < 0 || slash < dot)) {
    return key.replace(/[./]/g, (c) => (c === "/" ? "." : "/"));
  }
  return key;
}

/** Parses one file's text into `boot`. */
export function parseSysctlConf(text: string, file: string, boot: BootSysctls): void {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === "" || raw.startsWith("#") || raw.startsWith(";")) continue;
    const eq = raw.indexOf("=");
    if (eq < 0 && raw.startsWith("!")) {
      // "!glob": names earlier globs matched are not set (systemd 254); no value.
      const key = normaliseKey(raw.slice(1).trim());
      const pinned = { value: "", file, line: i + 1 };
      boot.globs.push({ pattern: globToRegExp(key), source: key, pinned, exclude: true });
      continue;
    }
    if (eq < 0) {
      boot.problems.push(`${file}:${i + 1}: no '=' in '${raw.slice(0, 80)}'`);
      continue;
    }
    let key = raw.slice(0, eq).trim();
    const value = raw.slice(eq + 1).trim().split(/\s+/).join(" ");
    if (key.startsWith("-")) key = key.slice(1).trim();
    let exclude = false;
    if (key.startsWith("!")) {
      exclude = true;
      key = key.slice(1).trim();
    }
    if (key === "") {
      boot.problems.push(`${file}:${i + 1}: empty key`);
      continue;
    }
    key = normaliseKey(key);
    const pinned = { value, file, line: i + 1 };
    if (/[*?[]/.test(key) || exclude) {
      boot.globs.push({ pattern: globToRegExp(key), source: key, pinned, exclude });
    } else {
      let name = key;
      try {
        name = canonicalSysctlName(key);
      } catch {
        // kept as written: it matches nothing bpfpilot tunes
      }
      boot.exact.set(name, pinned);
    }
  }
}

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

function isMasked(path: string): boolean {
  try {
    if (Deno.realPathSync(path) === "/dev/null") return true;
    return Deno.statSync(path).size === 0;
  } catch {
    return false;
  }
}

/**
 * Reads the boot-time sysctl configuration under `root` (a test passes a temp dir; default the
 * real root). Unreadable files are skipped and reported in `problems`.
 */
export function readBootSysctls(root = ""): BootSysctls {
  const boot: BootSysctls = { exact: new Map(), globs: [], files: [], problems: [] };
  const chosen = new Map<string, string>(); // file name -> path (the first directory wins)
  for (const dir of SYSCTL_D_DIRS) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${root}${dir}`)];
    } catch {
      continue; // absent directory
    }
    for (const e of entries) {
      if (!e.name.endsWith(".conf") || chosen.has(e.name)) continue;
      chosen.set(e.name, `${dir}/${e.name}`);
    }
  }
  const names = [...chosen.keys()].sort();
  const paths = names.map((n) => chosen.get(n)!);
  if (!paths.includes(SYSCTL_CONF)) paths.push(SYSCTL_CONF);
  for (const path of paths) {
    const full = `${root}${path}`;
    if (isMasked(full)) continue;
    const text = readText(full);
    if (text === null) {
      if (path !== SYSCTL_CONF) boot.problems.push(`${path}: cannot be read`);
      continue;
    }
    boot.files.push(path);
    parseSysctlConf(text, path, boot);
  }
  return boot;
}

/** Numbers of a pinned value, or null when it is not numeric. */
export function pinnedNumbers(p: PinnedValue): number[] | null {
  const parts = p.value.split(" ").map(Number);
  return parts.every(Number.isFinite) ? parts : null;
}
