/**
 * Atomic textfile writes for node_exporter: write `FILE.<pid>` (not matching its `*.prom` glob),
 * then rename over FILE, so the collector never reads half a file.
 */
import { AuditError } from "./errors.ts";

function describe(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "its directory does not exist";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.IsADirectory) return "it is a directory";
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\(os error \d+\)/, "");
}

function tempName(path: string): string {
  return `${path}.${Deno.pid}`;
}

/** Fails early (before a long window) when FILE cannot be written. */
export function checkTextfileWritable(path: string): void {
  const tmp = tempName(path);
  try {
    Deno.writeTextFileSync(tmp, "");
    Deno.removeSync(tmp);
  } catch (e) {
    throw new AuditError(
      `cannot write --prometheus ${path}: ${describe(e)}; point it at a writable directory ` +
        "(node_exporter's --collector.textfile.directory)",
    );
  }
}

export function writeTextfileAtomic(path: string, content: string): void {
  const tmp = tempName(path);
  try {
    const file = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o644 });
    try {
      const bytes = new TextEncoder().encode(content);
      let off = 0;
      while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch {
      // the temp file was never created
    }
    throw new AuditError(
      `cannot write --prometheus ${path}: ${describe(e)}; point it at a writable directory ` +
        "(node_exporter's --collector.textfile.directory)",
    );
  }
}
