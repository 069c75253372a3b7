// Adaptive drafting vs plain decoding, alternating runs in one process (drift-robust A/B):
//   node bench/run.mjs adaptive MODEL [tokens=48] [pairs=3] [exitLayer=4]
import { loadModel } from 'layerskip';

const [path, tokens = '48', pairs = '3', exitLayer = '4'] = process.argv.slice(2);
if (!path) throw new Error('usage: adaptive MODEL [tokens] [pairs] [exitLayer]');
const model = await loadModel(path);
const ctx = await model.createContext({ contextSize: 1024 });
const out: Record<'plain' | 'adaptive', number[]> = { plain: [], adaptive: [] };
for (let i = 0; i < Number(pairs); i++) {
  for (const mode of ['plain', 'adaptive'] as const) {
    ctx.clear();
    const r = await ctx.generate('Once upon a time', {
      maxTokens: Number(tokens),
      selfSpeculative: mode === 'plain' ? undefined : { exitLayer: Number(exitLayer), draftTokens: 8, adaptive: true },
    }).result;
    out[mode].push(r.timings.tokensPerSecond);
  }
}
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
console.log(`plain    ${out.plain.map((v) => v.toFixed(1)).join(' / ')} tokens/s`);
console.log(`adaptive ${out.adaptive.map((v) => v.toFixed(1)).join(' / ')} tokens/s`);
console.log(`ratio ${(mean(out.adaptive) / mean(out.plain)).toFixed(2)}x`);
model.dispose();
