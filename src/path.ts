/** POSIX path components, for bpfpilot's own paths and commander's node:path stand-in. */

/** Everything before the last component ("/" at the root, "." for a bare name). */
export function dirname(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  if (trimmed === "") return path.startsWith("/") ? "/" : ".";
  const at = trimmed.lastIndexOf("/");
  if (at < 0) return ".";
  const dir = trimmed.slice(0, at).replace(/\/+$/, "");
  return dir === "" ? "/" : dir;
}

/** The last component, without `suffix` when it ends with it. */
export function basename(path: string, suffix?: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const base = trimmed.slice(trimmed.lastIndexOf("/") + 1);
  return suffix && base !== suffix && base.endsWith(suffix) ? base.slice(0, -suffix.length) : base;
}
