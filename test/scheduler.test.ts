// decoding/scheduler against a fake native context that records every call: the calls of several
// sequences made in one turn become one decodeMany / draftMany / verifyMany, calls that cannot share
// a batch run alone, a removeFrom made while the addon is busy is applied before the next native
// call, and a failed batch rejects every call it served.
import { describe, expect, it } from 'vitest';
import { NativeScheduler } from '../lib/decoding/scheduler.js';
import type { NativeContext, NativeContextState } from '../lib/native/binding.js';

const LAYERS = 4;

/** A NativeContext whose calls settle after one macrotask, logging `name(sequences)` in order. */
function fakeNative(batchSize = 64) {
  const log: string[] = [];
  let fail: Error | null = null;
  const later = <T>(value: T) => new Promise<T>((resolve, reject) => setImmediate(() => (fail ? reject(fail) : resolve(value))));
  const state = (): NativeContextState => ({
    contextSize: 512,
    batchSize,
    sequences: 4,
    cellsUsed: 0,
    nextPosition: 10,
    verifiedPosition: 10,
    draftLayer: 0,
    busy: false,
    disposed: false,
  });
  const native = {
    decode: (o: { sequence?: number }) => {
      log.push(`decode(${o.sequence})`);
      return later({ argmax: [1], nativeMs: 0 });
    },
    draft: (o: { sequence?: number }) => {
      log.push(`draft(${o.sequence})`);
      return later({ tokens: [2], maxProb: [1], lastDecoded: true, nativeMs: 0 });
    },
    decodeMany: (entries: { sequence: number }[]) => {
      log.push(`decodeMany(${entries.map((e) => e.sequence)})`);
      return later({ results: entries.map((e) => ({ argmax: [100 + e.sequence] })), nativeMs: 0 });
    },
    draftMany: (entries: { sequence: number }[]) => {
      log.push(`draftMany(${entries.map((e) => e.sequence)})`);
      return later(entries.map((e) => ({ tokens: [200 + e.sequence], maxProb: [1], lastDecoded: true, nativeMs: 0 })));
    },
    verifyMany: (o: { layer: number; entries: { sequence: number }[] }) => {
      log.push(`verifyMany@${o.layer}(${o.entries.map((e) => e.sequence)})`);
      return later({ results: o.entries.map((e) => ({ argmax: [300 + e.sequence] })), nativeMs: 0 });
    },
    removeFrom: (position: number, sequence?: number) => log.push(`removeFrom(${sequence}@${position})`),
    state,
    abort: () => log.push('abort'),
    setDraftHead: () => later(undefined),
  } as unknown as NativeContext;
  return { native, log, failNext: (e: Error | null) => (fail = e) };
}

describe('NativeScheduler', () => {
  it('full decodes of several sequences in one turn become one decodeMany, each gets its own row', async () => {
    const { native, log } = fakeNative();
    const s = new NativeScheduler(native, LAYERS);
    const results = await Promise.all([0, 1, 2].map((q) => s.view(q).decode({ tokens: Int32Array.of(5) })));
    expect(log).toEqual(['decodeMany(0,1,2)']);
    expect(results.map((r) => r.argmax[0])).toEqual([100, 101, 102]);
  });

  it('drafts with one exit layer become one draftMany; another layer runs as its own batch', async () => {
    const { native, log } = fakeNative();
    const s = new NativeScheduler(native, LAYERS);
    const draft = (q: number, layer: number) => s.view(q).draft({ token: 1, layer, maxTokens: 3 });
    const r = await Promise.all([draft(0, 2), draft(1, 2), draft(2, 3)]);
    expect(log).toEqual(['draftMany(0,1)', 'draft(2)']);
    expect(r.map((x) => x.tokens[0])).toEqual([200, 201, 2]);
  });

  it('verifications from one layer become one verifyMany; a decode with probs runs alone', async () => {
    const { native, log } = fakeNative();
    const s = new NativeScheduler(native, LAYERS);
    const verify = (q: number) => s.view(q).decode({ layers: [2, LAYERS], outputs: 'all' });
    const r = await Promise.all([verify(0), verify(3), s.view(1).decode({ tokens: Int32Array.of(5), probs: true })]);
    expect(log).toEqual(['verifyMany@2(0,3)', 'decode(1)']);
    expect(r.map((x) => x.argmax[0])).toEqual([300, 303, 1]);
  });

  it('splits decodes that exceed the batch size into several decodeMany calls', async () => {
    const { native, log } = fakeNative(4);
    const s = new NativeScheduler(native, LAYERS);
    await Promise.all([0, 1, 2].map((q) => s.view(q).decode({ tokens: Int32Array.of(1, 2) })));
    expect(log).toEqual(['decodeMany(0,1)', 'decode(2)']);
  });

  it('a removeFrom while the addon is busy is seen in state() at once and applied before the next native call', async () => {
    const { native, log } = fakeNative();
    const s = new NativeScheduler(native, LAYERS);
    const running = s.view(0).decode({ tokens: Int32Array.of(5), probs: true });
    await new Promise((r) => setImmediate(r)); // the decode is now running in the "addon"
    s.view(1).removeFrom(7);
    expect(log).toEqual(['decode(0)']); // deferred, not sent while busy
    expect(s.view(1).state().nextPosition).toBe(7);
    await running;
    await s.view(2).decode({ tokens: Int32Array.of(5), probs: true });
    expect(log).toEqual(['decode(0)', 'removeFrom(1@7)', 'decode(2)']);
    await new Promise((r) => setImmediate(r)); // the scheduler has settled: idle
    s.view(3).removeFrom(4); // idle: applied at once
    expect(log.at(-1)).toBe('removeFrom(3@4)');
  });

  it('a failed batch rejects every call it served, and the next turn runs normally', async () => {
    const { native, log, failNext } = fakeNative();
    const s = new NativeScheduler(native, LAYERS);
    failNext(new Error('boom'));
    const settled = await Promise.allSettled([0, 1].map((q) => s.view(q).decode({ tokens: Int32Array.of(5) })));
    expect(settled.map((x) => x.status)).toEqual(['rejected', 'rejected']);
    failNext(null);
    await expect(s.view(0).decode({ tokens: Int32Array.of(5) })).resolves.toMatchObject({ argmax: [1] });
    expect(log).toEqual(['decodeMany(0,1)', 'decode(0)']);
  });

  it('abort() stops the addon only when the running call is that sequence alone', async () => {
    const { native, log } = fakeNative();
    const s = new NativeScheduler(native, LAYERS);
    const batch = Promise.all([0, 1].map((q) => s.view(q).decode({ tokens: Int32Array.of(5) })));
    await new Promise((r) => setImmediate(r));
    s.view(0).abort(); // a shared batch finishes for the other sequence
    await batch;
    const alone = s.view(1).decode({ tokens: Int32Array.of(5), probs: true });
    await new Promise((r) => setImmediate(r));
    s.view(1).abort();
    await alone;
    expect(log).toEqual(['decodeMany(0,1)', 'decode(1)', 'abort']);
  });

  it("a sequence's view offers only that sequence's operations: nothing batched or context-wide", () => {
    const { native } = fakeNative();
    const view = new NativeScheduler(native, LAYERS).view(1);
    expect(Object.keys(view).sort()).toEqual(['abort', 'decode', 'draft', 'removeFrom', 'setDraftHead', 'state']);
  });
});
