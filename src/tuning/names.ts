/** Tuner names as users type them. */

/** Accepts bpftune's plugin file names too: `tcp_buffer_tuner.so` means `tcp_buffer`. */
export function normalizeTunerName(name: string): string {
  return name.replace(/\.so$/, "").replace(/_tuner$/, "");
}
