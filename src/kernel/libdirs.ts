/**
 * Where this system keeps its shared libraries. The search starts in the libdir layout of this
 * system (Debian multiarch, lib64, lib: baked in by a packager's build, else detected at run
 * time), then tries the other layouts, then the bare soname through the dynamic loader. So one
 * binary per architecture finds libbpf and libc on every distribution.
 */

export type LibdirLayout = "multiarch" | "lib64" | "lib";
export const LAYOUTS: readonly LibdirLayout[] = ["multiarch", "lib64", "lib"];

/** Replaced at bundle time by scripts/build.ts (esbuild --define) for a distribution's package. */
declare const BPFPILOT_LIBDIR_LAYOUT: string | undefined;

function multiarchTriplet(): string {
  return Deno.build.arch === "aarch64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
}

export function layoutDirs(layout: LibdirLayout): string[] {
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

/** The system's library directories, this system's layout first. */
export function systemLibdirs(layout: LibdirLayout = builtLayout() ?? detectLayout()): string[] {
  return [layout, ...LAYOUTS.filter((l) => l !== layout)].flatMap(layoutDirs);
}

/** `soname` in each directory, then bare (the dynamic loader's own search). */
export function libraryCandidates(soname: string, dirs: string[] = systemLibdirs()): string[] {
  return [...dirs.map((d) => `${d}/${soname}`), soname];
}

/** Whether a candidate is worth a dlopen: a bare soname always is, a path only if present. */
export function candidatePresent(candidate: string): boolean {
  if (!candidate.startsWith("/")) return true;
  try {
    Deno.statSync(candidate);
    return true;
  } catch {
    return false;
  }
}
