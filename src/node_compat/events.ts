/**
 * Stand-ins for the node: built-ins commander requires, bundled in their place (scripts/build.ts)
 * so the program never loads Deno's Node compatibility layer: importing any node: module costs
 * every start ~90 ms and ~10 MB. Exactly what commander uses is here, no more
 * (test/unit/node_compat_test.ts compares them with commander's source). This one: the
 * EventEmitter its Command extends (option events, `command:*`).
 */
// deno-lint-ignore no-explicit-any
type Listener = (...args: any[]) => void;

export class EventEmitter {
  #listeners = new Map<string | symbol, Listener[]>();

  on(event: string | symbol, listener: Listener): this {
    const list = this.#listeners.get(event);
    if (list) list.push(listener);
    else this.#listeners.set(event, [listener]);
    return this;
  }

  emit(event: string | symbol, ...args: unknown[]): boolean {
    const list = this.#listeners.get(event);
    if (!list?.length) return false;
    for (const listener of [...list]) listener.apply(this, args);
    return true;
  }

  listenerCount(event: string | symbol): number {
    return this.#listeners.get(event)?.length ?? 0;
  }
}
