// One native context, several sequences generating at once. The addon runs one operation at a time
// per context, so every sequence's calls go through this scheduler: the calls made in the same turn
// of the event loop are collected and sent as batches, one pass over the weights for all of them:
// full-model token decodes (plain steps, prompt chunks) as one decodeMany, early-exit drafts with
// the same exit layer as one draftMany (each draft step one batch), verifications with the same
// exit layer as one verifyMany. Anything else runs alone. Each sequence sees a view with the
// NativeSequence interface bound to its sequence, so the decoding loops are unchanged.
import type {
  NativeContext,
  NativeContextState,
  NativeSequence,
  NativeDecodeOptions,
  NativeDecodeResult,
  NativeDraftHead,
  NativeDraftOptions,
  NativeDraftResult,
} from '../native/binding.js';

type Call =
  | { kind: 'decode'; seq: number; options: NativeDecodeOptions; resolve: (r: NativeDecodeResult) => void; reject: (e: unknown) => void }
  | { kind: 'draft'; seq: number; options: NativeDraftOptions; resolve: (r: NativeDraftResult) => void; reject: (e: unknown) => void }
  | { kind: 'exclusive'; seq: number; run: () => Promise<unknown>; resolve: (r: unknown) => void; reject: (e: unknown) => void };

type DecodeCall = Extract<Call, { kind: 'decode' }>;
type DraftCall = Extract<Call, { kind: 'draft' }>;

export class NativeScheduler {
  private queue: Call[] = [];
  /** The sequences whose work the addon is running now (null: idle). */
  private running: ReadonlySet<number> | null = null;
  private flushing = false;
  /** removeFrom() calls made while the addon was busy, applied before the next native call. */
  private readonly pendingRemove = new Map<number, number>();

  constructor(
    private readonly native: NativeContext,
    private readonly layerCount: number,
  ) {}

  /** The NativeSequence interface for one sequence: its own calls, nothing context-wide. */
  view(seq: number): NativeSequence {
    return {
      decode: (options) => this.enqueue<NativeDecodeResult>({ kind: 'decode', seq, options } as Call),
      draft: (options) => this.enqueue<NativeDraftResult>({ kind: 'draft', seq, options } as Call),
      setDraftHead: (head: NativeDraftHead) => this.enqueue<void>({ kind: 'exclusive', seq, run: () => this.native.setDraftHead(head) } as Call),
      removeFrom: (position: number) => this.removeFrom(seq, position),
      state: () => this.state(seq),
      abort: () => this.abort(seq),
    };
  }

  /** The sequence's state, with a removeFrom() that waits for the addon already counted. */
  private state(seq: number): NativeContextState {
    const s = this.native.state(seq);
    const cut = this.pendingRemove.get(seq);
    if (cut === undefined) return s;
    const nextPosition = Math.min(s.nextPosition, cut);
    const verifiedPosition = Math.min(s.verifiedPosition, cut);
    return { ...s, nextPosition, verifiedPosition, draftLayer: verifiedPosition === nextPosition ? 0 : s.draftLayer };
  }

  private removeFrom(seq: number, position: number): void {
    if (this.running === null) {
      this.applyRemovals();
      this.native.removeFrom(position, seq);
    } else {
      this.pendingRemove.set(seq, Math.min(position, this.pendingRemove.get(seq) ?? Infinity));
    }
  }

  private applyRemovals(): void {
    for (const [seq, position] of this.pendingRemove) this.native.removeFrom(position, seq);
    this.pendingRemove.clear();
  }

  /** Stops the running native call if it is this sequence's alone (a shared batch finishes for the others). */
  private abort(seq: number): void {
    if (this.running?.size === 1 && this.running.has(seq)) this.native.abort();
  }

  private enqueue<T>(call: Omit<Call, 'resolve' | 'reject'>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ ...call, resolve, reject } as Call);
      if (!this.flushing) {
        this.flushing = true;
        // the other sequences' calls of this turn (their loops resume on the same settled batch) join it
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const calls = this.queue;
        this.queue = [];
        // groups of calls one native batch can serve, by kind (and exit layer); the rest alone
        const groups = new Map<string, Call[]>();
        for (const c of calls) {
          const key = this.batchKey(c);
          const group = groups.get(key);
          if (group) group.push(c);
          else groups.set(key, [c]);
        }
        for (const [key, group] of groups) {
          if (key === 'alone' || group.length === 1) {
            for (const call of group) await this.runOne(call);
          } else if (key === 'decode') {
            await this.runDecodes(group as DecodeCall[]);
          } else if (key.startsWith('draft')) {
            await this.runDrafts(group as DraftCall[]);
          } else {
            await this.runVerifications(group as DecodeCall[]);
          }
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Which batch a call can join: 'decode', 'draft:E', 'verify:E', or 'alone'. */
  private batchKey(c: Call): string {
    if (c.kind === 'draft') return c.options.prefix?.length ? 'alone' : `draft:${c.options.layer}`; // draftMany takes no prefix
    if (c.kind !== 'decode') return 'alone';
    const o = c.options;
    if (o.hidden !== undefined || o.probs || o.returnHidden || o.position !== undefined) return 'alone';
    const [start, end] = o.layers ?? [0, this.layerCount];
    if (start === 0 && end === this.layerCount && o.tokens !== undefined) return 'decode';
    if (start > 0 && end === this.layerCount && o.tokens === undefined && o.outputs === 'all') return `verify:${start}`;
    return 'alone';
  }

  private async runDrafts(calls: DraftCall[]): Promise<void> {
    await this.guard(new Set(calls.map((c) => c.seq)), calls, async () => {
      const r = await this.native.draftMany(calls.map((c) => ({ ...c.options, sequence: c.seq })));
      calls.forEach((c, i) => c.resolve(r[i]));
    });
  }

  private async runVerifications(calls: DecodeCall[]): Promise<void> {
    const layer = calls[0].options.layers![0];
    await this.guard(new Set(calls.map((c) => c.seq)), calls, async () => {
      const r = await this.native.verifyMany({ layer, entries: calls.map((c) => ({ sequence: c.seq, count: c.options.count, logits: c.options.logits })) });
      calls.forEach((c, i) => c.resolve({ argmax: r.results[i].argmax, logits: r.results[i].logits, nativeMs: r.nativeMs }));
    });
  }

  private async runDecodes(calls: DecodeCall[]): Promise<void> {
    const { batchSize } = this.native.state();
    // as many sequences per native call as the batch size holds
    for (let at = 0; at < calls.length; ) {
      const group: typeof calls = [];
      let tokens = 0;
      while (at < calls.length && (group.length === 0 || tokens + calls[at].options.tokens!.length <= batchSize)) {
        tokens += calls[at].options.tokens!.length;
        group.push(calls[at++]);
      }
      if (group.length === 1) {
        await this.runOne(group[0]);
        continue;
      }
      await this.guard(new Set(group.map((c) => c.seq)), group, async () => {
        const r = await this.native.decodeMany(
          group.map((c) => ({ sequence: c.seq, tokens: c.options.tokens!, outputs: c.options.outputs, logits: c.options.logits })),
        );
        group.forEach((c, i) => c.resolve({ argmax: r.results[i].argmax, logits: r.results[i].logits, nativeMs: r.nativeMs }));
      });
    }
  }

  private async runOne(call: Call): Promise<void> {
    await this.guard(new Set([call.seq]), [call], async () => {
      if (call.kind === 'decode') call.resolve(await this.native.decode({ ...call.options, sequence: call.seq }));
      else if (call.kind === 'draft') call.resolve(await this.native.draft({ ...call.options, sequence: call.seq }));
      else call.resolve(await call.run());
    });
  }

  /** Runs one native call with `seqs` marked running; its failure rejects every call it served. */
  private async guard(seqs: ReadonlySet<number>, calls: readonly Call[], body: () => Promise<void>): Promise<void> {
    try {
      this.applyRemovals();
      this.running = seqs;
      await body();
    } catch (e) {
      for (const c of calls) c.reject(e);
    } finally {
      this.running = null;
    }
  }
}
