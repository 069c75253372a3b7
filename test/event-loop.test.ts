// Model loading and generation run off the main thread: a timer keeps firing on time meanwhile.
import { describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index.js';
import { randomModel } from './helpers.js';

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

describe('event loop stays responsive', () => {
  // ~25M parameters: each decode takes milliseconds, loading takes a while without mmap
  const path = randomModel({ nLayer: 8, nEmbd: 512, nHead: 8, nHeadKv: 4, nFf: 1536, nVocab: 8000, nCtx: 1024, tiedOutput: false, seed: 5, tensorType: 'f32' });

  it('during model load and generation', async () => {
    const load = await worstTimerLag(() => loadModel(path, { mmap: false }));
    const model = load.value;
    const ctx = await model.createContext({ contextSize: 1024, threads: 1 });
    const gen = await worstTimerLag(() => ctx.generate([1, 300, 301, 302], { maxTokens: 150 }).result);
    const spec = await worstTimerLag(
      () => ctx.generate([1, 300, 301, 302], { maxTokens: 150, selfSpeculative: { exitLayer: 4, draftTokens: 4 } }).result,
    );
    model.dispose();
    console.log(`timer lag: load ${load.lag.toFixed(1)} ms of ${load.ms.toFixed(0)}, generate ${gen.lag.toFixed(1)} ms of ${gen.ms.toFixed(0)}, self-speculative ${spec.lag.toFixed(1)} ms of ${spec.ms.toFixed(0)}`);
    // the work lasts long enough that blocking would show, and the timer never waited long
    expect(gen.ms).toBeGreaterThan(200);
    expect(load.lag).toBeLessThan(60);
    expect(gen.lag).toBeLessThan(60);
    expect(spec.lag).toBeLessThan(60);
  });
});
