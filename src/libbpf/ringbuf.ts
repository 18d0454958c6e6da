/**
 * Ring-buffer consumer that never blocks Deno's event loop: epoll_wait runs on the blocking pool
 * (a nonblocking FFI symbol), and ring_buffer__consume runs synchronously on the main thread so
 * sample callbacks are direct JS calls (the measured best design: see deno-libbpf-recipe §4).
 * One reader serves many maps (ring_buffer__add), and an eventfd in the same epoll set wakes the
 * waiter at once on stop, so shutdown does not wait for a timeout. Each timeout drains too: events
 * submitted without a wake-up wait at most that long.
 */
import type { BpfMap } from "./map.ts";
import { checkInt, checkPtr, errno, lib } from "./runtime.ts";

export type SampleHandler = (data: Uint8Array) => void;

const EPOLL_EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16; // packed on x86_64 only
const EFD_NONBLOCK = 0o4000, EFD_CLOEXEC = 0o2000000;
/**
 * Default pause after each drain before waiting again: at most 40 wake-ups/s, each handling what
 * arrived meanwhile. An event waits at most this long more, well within the ~50 ms that growth
 * may take to react (consecutive growth events of one namespace are 500 ms apart anyway).
 */
const MIN_GAP_MS = 25;
/**
 * A paced reader takes a wake-up that came less than this long after it began waiting again for
 * a stream (events from many namespaces): one namespace's events (two a second at most, the
 * kernel-side rate limit that paces growth) mostly come further apart, so they stay lone ones.
 * Not tcp_buffer's receive growth: the first socket at a max just raised is reported at once
 * (50-350 ms apart on the bench's path), and its raise must follow it (the `prompt` option).
 */
const STREAM_WITHIN_MS = 250;
/**
 * A paced stream whose pacer stays away this long is drained by the reader itself: a missed tick
 * delays events, it never strands them.
 */
const PACED_FALLBACK_MS = 2000;

export interface RingBufferStats {
  samples: number;
  handlerErrors: number;
  wakeups: number;
}

export class RingBufferReader {
  #rb: Deno.PointerObject | null = null;
  #handlers: SampleHandler[] = [];
  #callback: Deno.UnsafeCallback<
    { parameters: ["pointer", "pointer", "usize"]; result: "i32" }
  >;
  #wakeFd = -1;
  #running: Promise<void> | null = null;
  #stopping = false;
  /**
   * Ends the pause under way (null when not pausing): with the samples a paced drain consumed, 0
   * on stop.
   */
  #endPause: ((drained: number) => void) | null = null;
  readonly stats: RingBufferStats = { samples: 0, handlerErrors: 0, wakeups: 0 };

  /** `onHandlerError` sees exceptions thrown by handlers; the loop itself keeps going. */
  constructor(
    private readonly opts: {
      /**
       * Pause after each drain before waiting again (ms, default MIN_GAP_MS; 0: none): what
       * arrives meanwhile shares the next wake-up (and the daemon's journal batch).
       */
      minGapMs?: number;
      /** Longest wait for a wake-up before draining anyway (ms, default 1000). */
      pollMs?: number;
      onHandlerError?: (e: unknown) => void;
      /**
       * Runs each drain (the handlers of one wake-up's samples) inside it: the daemon makes one
       * journal batch of them.
       */
      around?: (drain: () => number) => number;
      /**
       * Streams are drained by pacedDrain(), not by the reader's own timer: once events keep
       * coming (a wake-up within STREAM_WITHIN_MS of waiting again), the reader stops waiting for
       * wake-ups and leaves each drain to the next pacedDrain() call (the daemon's 1 s tick,
       * inside its journal batch: the stream's changes and the tick's share one lock and one
       * fdatasync), until one finds nothing. A lone event is still drained at its wake-up.
       */
      paced?: boolean;
      /**
       * Asked after each drain (and reset by the asker): true when what it handled wants the next
       * event at its wake-up, not at the next pacedDrain(): the reader leaves a paced stream, or
       * does not enter one. tcp_buffer's growth of a receive max must follow its socket: the
       * kernel clamps the socket at the old max before the event is read, and a raise a tick
       * later (up to 1 s) let it sit there window-limited, beating its record at the clamp, until
       * the record was more than its window gave (a throughput bench transfer at 43-57 Mbit/s
       * of 91 for 19-45 s, in a third of the runs).
       */
      prompt?: () => boolean;
    } = {},
  ) {
    this.#callback = new Deno.UnsafeCallback(
      { parameters: ["pointer", "pointer", "usize"], result: "i32" } as const,
      (ctx, data, size) => {
        const idx = Number(Deno.UnsafePointer.value(ctx)) - 1;
        const handler = this.#handlers[idx];
        if (!handler || data === null) return 0;
        // Copy: the memory belongs to the ring buffer and is reused after we return.
        const bytes = new Uint8Array(
          Deno.UnsafePointerView.getArrayBuffer(data, Number(size)).slice(0),
        );
        this.stats.samples++;
        try {
          handler(bytes);
        } catch (e) {
          this.stats.handlerErrors++;
          this.opts.onHandlerError?.(e);
        }
        return 0;
      },
    );
  }

  /** Registers a BPF_MAP_TYPE_RINGBUF map (of a loaded object) with its handler. */
  add(map: BpfMap, handler: SampleHandler): void {
    const b = lib().bpf;
    this.#handlers.push(handler);
    const ctx = Deno.UnsafePointer.create(BigInt(this.#handlers.length));
    if (this.#rb === null) {
      this.#rb = checkPtr(
        b.ring_buffer__new(map.fd, this.#callback.pointer, ctx, null),
        `creating ring buffer reader for ${map.name}`,
      );
      this.#addWakeFd();
    } else {
      checkInt(
        b.ring_buffer__add(this.#rb, map.fd, this.#callback.pointer, ctx),
        `adding ring buffer ${map.name}`,
      );
    }
  }

  #addWakeFd() {
    const l = lib();
    this.#wakeFd = l.libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wakeFd < 0) throw new Error(`eventfd failed (errno ${errno()})`);
    const ev = new Uint8Array(EPOLL_EVENT_SIZE);
    const dv = new DataView(ev.buffer);
    dv.setUint32(0, 1, /* EPOLLIN */ true);
    dv.setUint32(4, 0xffffffff, true);
    const rc = l.libc.epoll_ctl(l.bpf.ring_buffer__epoll_fd(this.#rb!), 1, this.#wakeFd, ev);
    if (rc < 0) throw new Error(`epoll_ctl failed (errno ${errno()})`);
  }

  /** Drains what is pending without waiting; returns the number of samples consumed. */
  consume(): number {
    const rb = this.#rb;
    if (!rb) return 0;
    const drain = () => checkInt(lib().bpf.ring_buffer__consume(rb), "consuming ring buffer");
    return this.opts.around ? this.opts.around(drain) : drain();
  }

  /** Starts the wait/consume loop; resolves when stop() is called. */
  start(): Promise<void> {
    if (!this.#rb) throw new Error("ring buffer reader has no maps");
    this.#running ??= this.#loop();
    return this.#running;
  }

  async #loop(): Promise<void> {
    const l = lib();
    const epfd = l.bpf.ring_buffer__epoll_fd(this.#rb!);
    const events = new Uint8Array(EPOLL_EVENT_SIZE * 8);
    const minGap = this.opts.minGapMs ?? MIN_GAP_MS;
    while (!this.#stopping) {
      const waitFrom = performance.now();
      const n = await l.libc.epoll_wait(epfd, events, 8, this.opts.pollMs ?? 1000);
      if (this.#stopping) break;
      if (n > 0) {
        this.stats.wakeups++;
        const waited = performance.now() - waitFrom;
        this.consume();
        const stream = this.opts.paced && waited < STREAM_WITHIN_MS && !this.#prompt();
        // A gap batches bursts: one wake-up (and one journal batch) for what arrives in it.
        if (stream && minGap > 0) await this.#followStream();
        else if (minGap > 0) await this.#pause(minGap);
      } else if (n === 0) {
        // Producers may submit without waking us (BPF_RB_NO_WAKEUP, e.g. tcp_conn's samples,
        // where the wake-up costs more than the program): drained at each timeout.
        this.consume();
      }
    }
    this.consume();
  }

  /**
   * A paced stream: each pacedDrain() drains it, until one finds nothing (or stop). A pacer that
   * does not come within PACED_FALLBACK_MS is replaced by a drain here.
   */
  async #followStream(): Promise<void> {
    while (!this.#stopping) {
      const drained = (await this.#pause(PACED_FALLBACK_MS)) ?? this.consume();
      if (drained === 0 || this.#prompt()) return;
    }
  }

  /**
   * A pause between drains that stop() cuts short (resolving 0), as does a paced drain (with
   * what it consumed); null when it ran its course.
   */
  #pause(ms: number): Promise<number | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#endPause = null;
        resolve(null);
      }, ms);
      this.#endPause = (drained) => {
        clearTimeout(timer);
        this.#endPause = null;
        resolve(drained);
      };
    });
  }

  #prompt(): boolean {
    return this.opts.prompt?.() === true;
  }

  /**
   * Drains a paced stream now, when one waits (the `paced` option); returns the samples consumed
   * (0 when none waits). Call it inside the batch the samples' handling should join.
   */
  pacedDrain(): number {
    const end = this.#endPause;
    if (!end || !this.opts.paced || this.#stopping) return 0;
    const n = this.consume();
    end(n);
    return n;
  }

  /** Wakes the waiter at once and waits for the loop to end. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#endPause?.(0);
    if (this.#wakeFd >= 0) {
      const one = new Uint8Array(8);
      one[0] = 1;
      lib().libc.write(this.#wakeFd, one, 8n);
    }
    await this.#running;
  }

  /** Frees the reader; call after stop() and before closing the objects that own the maps. */
  close(): void {
    if (this.#rb) lib().bpf.ring_buffer__free(this.#rb);
    this.#rb = null;
    if (this.#wakeFd >= 0) lib().libc.close(this.#wakeFd);
    this.#wakeFd = -1;
    this.#callback.close();
  }
}
