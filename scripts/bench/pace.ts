/** The pacing loop of the bench's traffic generators (paced_*.ts). */

/**
 * Calls `work(n)` until `rate` units a second have been done over `seconds`; `work` does at most
 * `n` units (at least one) and returns how many it did. Returns the units done and the seconds it
 * took.
 */
export async function paced(
  rate: number,
  seconds: number,
  work: (n: number) => Promise<number> | number,
): Promise<{ sent: number; seconds: number }> {
  const t0 = performance.now();
  let sent = 0, now = 0;
  while ((now = performance.now() - t0) < seconds * 1000) {
    const due = Math.floor(rate * now / 1000);
    while (sent < due) sent += await work(due - sent);
    await new Promise((r) => setTimeout(r, 1));
  }
  return { sent, seconds: (performance.now() - t0) / 1000 };
}
