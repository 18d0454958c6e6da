/**
 * Per-namespace stores key their entries `${netns}\0...`. When namespaces are destroyed, their
 * entries go in one pass over the store, whatever the number of namespaces gone: a pass per
 * namespace cost (namespaces gone x keys) in one tick, and a host deleting 1,000 containers at
 * once met the 4,096 kept sysctl files that way.
 */

/** The namespace key an entry's key starts with (the whole key when it has no NUL). */
export function netnsOfKey(key: string): string {
  const nul = key.indexOf("\0");
  return nul < 0 ? key : key.slice(0, nul);
}

/** A Map or a Set keyed by `${netns}\0...`. */
export interface NetnsKeyed {
  keys(): IterableIterator<string>;
  delete(key: string): boolean;
}

/**
 * Removes every entry of `store` that belongs to a namespace in `gone`, in one pass; `drop`
 * removes one instead (e.g. closing a file first). Returns how many went. Deleting while
 * iterating is safe for Map and Set: entries not visited yet that are deleted are skipped.
 */
export function forgetNetnsKeys(
  store: NetnsKeyed,
  gone: ReadonlySet<string>,
  drop: (key: string) => void = (key) => store.delete(key),
): number {
  if (gone.size === 0) return 0;
  let n = 0;
  for (const key of store.keys()) {
    if (!gone.has(netnsOfKey(key))) continue;
    drop(key);
    n++;
  }
  return n;
}
