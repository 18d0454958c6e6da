/** A start the daemon refuses, with a message that names the cause and the fix (no stack). */
export class DaemonStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DaemonStartError";
  }
}
