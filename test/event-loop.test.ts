// Model loading and generation run off the main thread: a timer keeps firing on time meanwhile.
import { describe, expect, it } from 'vitest';
import { ContextFullError, loadModel } from '../lib/index.js';
import { STORIES, randomModel } from './helpers.js';

/** Runs `work` while a 5 ms interval measures the event loop's worst delay. */
async function worstTimerLag<T>(work: () => Promise<T>): Promise<{ lag: number; ms: number; value: T }> {
  let last = performance.now();
  let lag = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    lag = Math.max(lag, now - last - 5);
    last = now;
  }, 5);
  const t0 = performance.now();
  try {
    const value = await work();
    return { lag, ms: performance.now() - t0, value };
  } finally {
    clearInterval(timer);
  }
}

// Timer lag also measures CPU contention: npm test runs two files at once on 2 cores, and a test
// file beside this one (forked workers, RPC servers) can starve this process for a moment. A real
// block of the event loop repeats on every try; a starved timer does not, hence the retries.
describe('event loop stays responsive', { retry: 2 }, () => {
  // ~25M parameters: each decode takes milliseconds, loading takes a while without mmap
  const path = randomModel({ nLayer: 8, nEmbd: 512, nHead: 8, nHeadKv: 4, nFf: 1536, nVocab: 8000, nCtx: 1024, tiedOutput: false, seed: 5, tensorType: 'f32' });

  it('the header check of a 128k-token vocabulary runs on a worker thread (the built package)', async () => {
    const big = randomModel({ nLayer: 1, nEmbd: 64, nHead: 2, nHeadKv: 2, nFf: 128, nVocab: 128000, nCtx: 256, tiedOutput: true, seed: 6, tensorType: 'f16' });
    const built = await import('../dist/index.js'); // the worker runs the compiled module
    const t0 = performance.now();
    built.validateModelFile(big); // the same check on this thread
    const onThisThread = performance.now() - t0;
    const load = await worstTimerLag(() => built.loadModel(big));
    load.value.dispose();
    console.log(`header check: ${onThisThread.toFixed(1)} ms on the main thread; loadModel's worst timer lag ${load.lag.toFixed(1)} ms`);
    expect(onThisThread).toBeGreaterThan(20); // worth moving
    expect(load.lag).toBeLessThan(onThisThread / 2);
  });

  it('during model load and generation', async () => {
    const load = await worstTimerLag(() => loadModel(path, { mmap: false }));
    const model = load.value;
    const ctx = await model.createContext({ contextSize: 1024, threads: 1 });
    const gen = await worstTimerLag(() => ctx.generate([1, 300, 301, 302], { maxTokens: 150 }).result);
    const spec = await worstTimerLag(() => ctx.generate([1, 300, 301, 302], { maxTokens: 150, selfSpeculative: { exitLayer: 4, draftTokens: 4 } }).result);
    model.dispose();
    console.log(
      `timer lag: load ${load.lag.toFixed(1)} ms of ${load.ms.toFixed(0)}, generate ${gen.lag.toFixed(1)} ms of ${gen.ms.toFixed(0)}, self-speculative ${spec.lag.toFixed(1)} ms of ${spec.ms.toFixed(0)}`,
    );
    // the work lasts long enough that blocking would show, and the timer never waited long
    expect(gen.ms).toBeGreaterThan(200);
    expect(load.lag).toBeLessThan(60);
    expect(gen.lag).toBeLessThan(60);
    expect(spec.lag).toBeLessThan(60);
  });

  it('a 10 MB prompt is tokenized off the main thread', async () => {
    const model = await loadModel(STORIES);
    const ctx = await model.createContext({ contextSize: 256, threads: 1 });
    const text = 'Once upon a time, there was a little girl named Lily. '.repeat(190_000); // 10.3 MB
    const long = await worstTimerLag(() => ctx.generate(text, { maxTokens: 4 }).result.catch((e: unknown) => e));
    console.log(`timer lag: 10 MB prompt ${long.lag.toFixed(1)} ms of ${long.ms.toFixed(0)}`);
    expect(long.value).toBeInstanceOf(ContextFullError); // millions of tokens do not fit 256
    expect(long.ms).toBeGreaterThan(200); // long enough that blocking would show
    expect(long.lag).toBeLessThan(50);
    expect((await ctx.generate('Once upon a time', { maxTokens: 4 }).result).tokens).toHaveLength(4);
    model.dispose();
  });

  it('an abort during a 2,000-token prompt rejects within 50 ms and emits nothing after', async () => {
    const model = await loadModel(path);
    const ctx = await model.createContext({ contextSize: 2048, threads: 1 });
    const prompt = Array.from({ length: 2000 }, (_, i) => 3 + ((i * 7919) % 7000));
    const ac = new AbortController();
    const gen = ctx.generate(prompt, { maxTokens: 8, signal: ac.signal });
    let abortedAt = 0;
    let chunksAfter = 0;
    const consumed = (async () => {
      for await (const _ of gen) if (abortedAt > 0) chunksAfter++;
    })().catch((e: unknown) => e);
    setTimeout(() => {
      abortedAt = performance.now();
      ac.abort();
    }, 150);
    const error = await gen.result.catch((e: unknown) => e);
    const latency = performance.now() - abortedAt;
    await consumed;
    console.log(`abort during a 2,000-token prompt: rejected ${latency.toFixed(1)} ms after abort()`);
    expect(abortedAt).toBeGreaterThan(0); // the prompt was still being decoded at 150 ms
    expect((error as Error).name).toBe('AbortError');
    expect(latency).toBeLessThan(50);
    expect(chunksAfter).toBe(0);
    // the context stays usable, its cache consistent
    expect((await ctx.generate([1, 300, 301], { maxTokens: 3 }).result).tokens).toHaveLength(3);
    model.dispose();
  });
});
