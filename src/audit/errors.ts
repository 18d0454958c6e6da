/**
 * An error the user can act on: the message names the cause and the fix. The CLI prints it
 * without a stack trace and exits 2.
 */
export class AuditError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuditError";
  }
}
