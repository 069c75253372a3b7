// Does a model copy from its context (an induction head)? 20 sequences of 32 tokens drawn one by one
// from the held-out corpus, then the same 32 again: the share of the repeat's tokens (after its
// first) that the model's argmax predicts; and the same for 32-token held-out passages repeated.
// A model that copies scores near 1 on both; one that does not scores its plain next-token accuracy
// (a few percent on scrambled tokens, about a third on real text for the 12-layer brown models).
// Two more, for the lookup benchmark's tasks: an 80-token held-out passage repeated (a long copy),
// and a 60-token passage, the edit task's "The same text, revised:" line, then the passage again
// (the share of the passage's tokens predicted after the line, its first token included).
//   node bench/run.mjs copy-probe [model.gguf ...]   (default: the committed brown model)
// Needs models-generated/train/corpus-test.i32 (written by `node bench/run.mjs train`).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from 'layerskip';
import { hashSeed, Xoshiro128 } from 'layerskip/gguf';
import { ROOT } from './models.js';

const paths = process.argv.slice(2);
if (paths.length === 0) paths.push(join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf'));
const bytes = readFileSync(join(ROOT, 'models-generated', 'train', 'corpus-test.i32'));
const held = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const UNIT = 32;

for (const path of paths) {
  const model = await loadModel(path);
  const ctx = await model.createContext({ threads: 1, contextSize: 256 });
  const rng = new Xoshiro128(hashSeed(1, 'copy-probe'));
  const pick = () => Math.floor(rng.nextFloat() * held.length);
  const frame = Array.from(await model.tokenizeAsync('\n\nThe same text, revised:\n', { addBos: false }));
  /** Correct argmax predictions of the second copy of `unit` after BOS, `unit` and `between`. */
  const repeatHits = async (unit: number[], between: number[] = []): Promise<number> => {
    const seq = [1, ...unit, ...between, ...unit];
    ctx.clear();
    const r = await ctx.decodeLayers({ tokens: seq, outputs: 'all' });
    let hits = 0;
    // with a line between the copies, its last token's prediction (the copy's first token) counts
    const from = unit.length + between.length + (between.length > 0 ? 0 : 1);
    for (let i = from; i < seq.length - 1; i++) if (r.argmax[i] === seq[i + 1]) hits++;
    return hits;
  };
  const passage = (n: number): number[] => {
    const at = Math.min(pick(), held.length - n);
    return Array.from(held.subarray(at, at + n));
  };
  let scrambled = 0;
  let natural = 0;
  let long = 0;
  let edit = 0;
  for (let q = 0; q < 20; q++) {
    scrambled += await repeatHits(Array.from({ length: UNIT }, () => held[pick()]));
    natural += await repeatHits(passage(UNIT));
    long += await repeatHits(passage(80));
    edit += await repeatHits(passage(60), frame);
  }
  const n = 20 * (UNIT - 1);
  console.log(
    `${path}: repeat accuracy, scrambled tokens ${(scrambled / n).toFixed(3)}, real text ${(natural / n).toFixed(3)}, ` +
      `80-token passages ${(long / (20 * 79)).toFixed(3)}, after the edit line ${(edit / (20 * 60)).toFixed(3)}`,
  );
  ctx.dispose();
  model.dispose();
}
