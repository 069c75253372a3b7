// Small Model conveniences: countTokens, and the warning for gpuLayers on a build without a GPU.
import { afterEach, expect, it, vi } from 'vitest';
import { loadModel, systemInfo } from '../lib/index.js';
import { STORIES } from './helpers.js';

afterEach(() => vi.restoreAllMocks());

it('countTokens counts what tokenize gives, BOS included when it is added', async () => {
  const model = await loadModel(STORIES);
  try {
    for (const text of ['', 'Once upon a time', 'Lily and Ben went to the park. They saw a big dog!']) {
      expect(model.countTokens(text)).toBe(model.tokenize(text).length);
      expect(model.countTokens(text, { addBos: false })).toBe(model.tokenize(text, { addBos: false }).length);
    }
    expect(model.countTokens('Once upon a time', { addBos: true })).toBe(model.countTokens('Once upon a time', { addBos: false }) + 1);
  } finally {
    model.dispose();
  }
});

it.runIf(!systemInfo().gpuOffload)('gpuLayers on a build without a GPU backend warns once, and the model still loads', async () => {
  const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  for (let i = 0; i < 2; i++) (await loadModel(STORIES, { gpuLayers: 99 })).dispose();
  (await loadModel(STORIES)).dispose();
  const ours = warn.mock.calls.filter((c) => String(c[0]).includes('gpuLayers has no effect'));
  expect(ours).toHaveLength(1);
});
