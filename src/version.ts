/** Product version, printed by `--version` and recorded in state files. */
export const VERSION = "0.1.0";
