// Usage errors exit 2 from every subcommand, not only from the top level (issue 12: "usage errors
// exit 2 everywhere"): commander's addCommand() does not pass exitOverride on by itself.
import { strictEqual as assertEquals } from "node:assert/strict";
import { main } from "../../src/cli/main.ts";

function silenced<T>(f: () => Promise<T>): Promise<T> {
  const write = Deno.stderr.writeSync;
  const error = console.error;
  Deno.stderr.writeSync = (b: Uint8Array) => b.length;
  console.error = () => {};
  return f().finally(() => {
    Deno.stderr.writeSync = write;
    console.error = error;
  });
}

Deno.test("an unknown option exits 2 from every command and subcommand", async () => {
  const commands = [
    [],
    ["run"],
    ["support"],
    ["rollback"],
    ["enable"],
    ["audit"],
    ["config"],
    ["config", "check"],
    ["config", "show"],
    ["query"],
  ];
  for (const c of commands) {
    assertEquals(await silenced(() => main([...c, "--no-such-option"])), 2, c.join(" "));
  }
});
