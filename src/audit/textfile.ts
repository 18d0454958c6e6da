/**
 * Atomic textfile writes for node_exporter: a fresh temp file under a random name that its
 * `*.prom` glob does not match, then a rename over FILE, so the collector never reads half a
 * file. FILE must be absent or a regular file (kernel/safe_file.ts): audit runs as root from
 * cron, often into a directory other accounts can write.
 */
import { checkWritable, SafeFileError, writeFileAtomic } from "../kernel/safe_file.ts";
import { AuditError } from "./errors.ts";

function failure(path: string, e: unknown): AuditError {
  const why = e instanceof SafeFileError ? e.message : String(e);
  return new AuditError(
    `cannot write --prometheus ${path}: ${why}; point it at a file in a writable directory ` +
      "(node_exporter's --collector.textfile.directory)",
  );
}

/** Fails early (before a long window) when FILE cannot be written. */
export function checkTextfileWritable(path: string): void {
  try {
    checkWritable(path);
  } catch (e) {
    throw failure(path, e);
  }
}

export function writeTextfileAtomic(path: string, content: string): void {
  try {
    writeFileAtomic(path, content, 0o644);
  } catch (e) {
    throw failure(path, e);
  }
}
