/** A private temporary directory (daemon state), removed at cleanup. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onCleanup } from "./cleanup.ts";

export function tempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `bpfp-bench-${tag}-`));
  onCleanup(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
