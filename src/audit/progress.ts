/**
 * Progress bar for the observation window, drawn on stderr only when it is a terminal: cron
 * mail and redirected output stay free of control characters.
 */

export interface ErrStream {
  write(text: string): void;
  isTTY: boolean;
  /** Terminal width, when known. */
  columns?: number;
}

export interface Progress {
  update(fraction: number): void;
  /** Erases the bar (the report follows on stdout). */
  finish(): void;
}

const NO_PROGRESS: Progress = { update() {}, finish() {} };

export function progressBar(stream: ErrStream, totalSeconds: number): Progress {
  if (!stream.isTTY) return NO_PROGRESS;
  const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - 40));
  let last = "";
  return {
    update(fraction) {
      const f = Math.max(0, Math.min(1, fraction));
      const filled = Math.round(f * width);
      const line = `observing [${"#".repeat(filled)}${"-".repeat(width - filled)}] ` +
        `${String(Math.floor(f * 100)).padStart(3)}% ${
          Math.floor(f * totalSeconds)
        }/${totalSeconds} s`;
      if (line === last) return;
      last = line;
      stream.write(`\r${line}`);
    },
    finish() {
      if (last !== "") stream.write("\r\x1b[2K");
    },
  };
}
