/**
 * Undo steps for everything the benchmark creates or changes (processes it started, namespaces it
 * created, host files and sysctls it touched). They run in reverse order at the end, on error and
 * on SIGINT/SIGTERM, each independently, so one failing step cannot leave the others undone.
 */

type Step = { what: string; run: () => void | Promise<void> };
const steps: Step[] = [];

/** Registers an undo step; returns a function that runs it now (once) and unregisters it. */
export function onCleanup(what: string, run: () => void | Promise<void>): () => Promise<void> {
  const step = { what, run };
  steps.push(step);
  return async () => {
    const i = steps.indexOf(step);
    if (i < 0) return;
    steps.splice(i, 1);
    await step.run();
  };
}

export async function runCleanups(): Promise<void> {
  while (steps.length) {
    const step = steps.pop()!;
    try {
      await step.run();
    } catch (e) {
      console.error(`bench: cleanup '${step.what}' failed: ${(e as Error).message}`);
    }
  }
}

let stoppedBy: { signal: Deno.Signal; code: number } | null = null;

/** The signal that interrupted the run, if any (a section failing after it is no news). */
export function interrupted(): { signal: Deno.Signal; code: number } | null {
  return stoppedBy;
}

/** On Ctrl-C or SIGTERM: undo everything, then exit 130/143. */
export function cleanupOnSignals(): void {
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    Deno.addSignalListener(signal, () => {
      if (stoppedBy) return;
      stoppedBy = { signal, code };
      console.error(`bench: ${signal}, cleaning up`);
      runCleanups().finally(() => Deno.exit(code));
    });
  }
}
