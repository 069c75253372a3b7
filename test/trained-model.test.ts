// The committed LayerSkip-trained model (models/layerskip-brown-12L.Q8_0.gguf, models/README.md):
// it loads, and self-speculative decoding on it (early exit, lookup, both) gives the plain output.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelFixture, STORIES } from './helpers.js';

const TRAINED = join(STORIES, '..', 'layerskip-brown-12L.Q8_0.gguf');

describe.runIf(existsSync(TRAINED))('the LayerSkip-trained demo model', () => {
  const f = modelFixture(() => TRAINED, { threads: 1, kvCacheType: 'f32', flashAttention: false });

  it('is the 12-layer model the README describes', () => {
    expect(f.model.info).toMatchObject({ architecture: 'llama', layerCount: 12, embeddingSize: 128, headCount: 4, vocabularySize: 512 });
  });

  it('decodes self-speculatively to the plain greedy output, with and without lookup', async () => {
    for (const prompt of ['The committee said that the new law would', 'She looked at the old house and']) {
      const plain = await f.ctx.generate(prompt, { maxTokens: 64 }).result;
      for (const spec of [
        { exitLayer: 4, draftTokens: 2 },
        { exitLayer: 6, draftTokens: 3, lookup: true },
        { exitLayer: 2, draftTokens: 1, lookup: true },
      ]) {
        const r = await f.ctx.generate(prompt, { maxTokens: 64, selfSpeculative: spec }).result;
        expect(r.tokens, JSON.stringify(spec)).toEqual(plain.tokens);
      }
    }
  });
});
