// Fuzz worker: a child process that runs one mutated model file at a time through the built
// library (load, tokenize, context, three generations, dispose) and reports each stage to the
// parent before entering it, so that when the process dies the parent knows where.
// A thrown error is a clean rejection; only a dead or stuck process is a failure.
//
//   fork('test/fuzz/worker.mjs', [probeModelPath, 'validate' | 'no-validate'])
//   parent -> { type: 'case', id, path }
//   worker -> { type: 'ready' } | { type: 'stage', id, stage } | { type: 'done', id, outcome, ... }
import { loadModel } from '../../dist/index.js';

const PROMPT = 'Once upon a time';
// characters outside the seed vocabulary's pieces: tokenizing them needs the byte-fallback tokens
const BYTE_FALLBACK_TEXT = 'price: 5 \u20ac, caf\u00e9 \u65e5\u672c \u{1F600}';
const TOKENS = 8;
const GENERATIONS = [
  ['generate-plain', { maxTokens: TOKENS }],
  ['generate-speculative', { maxTokens: TOKENS, selfSpeculative: { exitLayer: 2, draftTokens: 3 } }],
  ['generate-sampled', { maxTokens: TOKENS, temperature: 0.8, topK: 40, topP: 0.9, seed: 1 }],
];

const [probePath, validation = 'validate'] = process.argv.slice(2);
if (!probePath || !process.send || !['validate', 'no-validate'].includes(validation)) {
  console.error("usage: fork(worker.mjs, [probeModelPath, 'validate' | 'no-validate']) with an IPC channel");
  process.exit(2);
}
// 'no-validate' loads without the library's model-file checks (loadModel's validate: false), to
// see that the mutations still reach the faults those checks guard against
const loadOptions = validation === 'no-validate' ? { validate: false } : {};

/** Sends a message and waits until it is written, so it reaches the parent even if the next native call kills us. */
function send(message) {
  return new Promise((resolve) => process.send(message, () => resolve()));
}

/** The fields of a thrown value the parent needs to name the cause. */
function describeError(stage, err) {
  const e = err instanceof Error ? err : new Error(String(err));
  const reason = e.reason === undefined ? undefined : typeof e.reason === 'string' ? e.reason : JSON.stringify(e.reason);
  return { stage, code: e.code === undefined ? undefined : String(e.code), reason, name: e.name, message: e.message };
}

async function generate(ctx, prompt, options) {
  const gen = ctx.generate(prompt, options);
  let text = '';
  for await (const chunk of gen) text += chunk.text; // iterate: the streaming path is part of the API under test
  const result = await gen.result;
  if (result.text !== text) throw new Error(`streamed text differs from the result text`);
  return result;
}

// The probe: the unmutated model stays loaded for the worker's lifetime; after every case it must
// still produce the same greedy tokens, or the process is no longer usable (corrupted state).
const probeModel = await loadModel(probePath);
async function probeTokens() {
  const ctx = await probeModel.createContext({ contextSize: 64 });
  try {
    return (await generate(ctx, PROMPT, { maxTokens: 4 })).tokens.join(',');
  } finally {
    ctx.dispose();
  }
}
const baseline = await probeTokens();

async function runCase(id, path) {
  const errors = [];
  let current = 'load';
  const stage = (name) => {
    current = name;
    return send({ type: 'stage', id, stage: name });
  };
  let model;
  let ctx;
  try {
    await stage('load');
    model = await loadModel(path, loadOptions);

    await stage('tokenize');
    let prompt;
    try {
      prompt = model.tokenize(PROMPT);
      model.detokenize(prompt);
    } catch (e) {
      errors.push(describeError('tokenize', e));
      // go on with token ids inside the vocabulary, so the compute stages still run on this model
      const n = Math.max(1, model.info.vocabularySize);
      prompt = [1 % n, 5 % n, 9 % n];
    }
    try {
      model.detokenize(model.tokenize(BYTE_FALLBACK_TEXT));
    } catch (e) {
      errors.push(describeError('tokenize', e));
    }

    await stage('context');
    ctx = await model.createContext({ contextSize: 128 });

    // every generation runs even after another one failed: a model that one path rejects may
    // still crash another (non-finite logits in plain decoding vs. the draft loop)
    for (const [name, options] of GENERATIONS) {
      await stage(name);
      try {
        await generate(ctx, prompt, options);
      } catch (e) {
        errors.push(describeError(name, e));
      }
    }
  } catch (e) {
    errors.push(describeError(current, e));
  } finally {
    // dispose whatever was created, whatever failed
    await stage('dispose');
    for (const target of [ctx, model]) {
      try {
        target?.dispose();
      } catch (e) {
        errors.push(describeError('dispose', e));
      }
    }
  }

  await stage('probe');
  let usable = true;
  let probeError;
  try {
    const tokens = await probeTokens();
    if (tokens !== baseline) {
      usable = false;
      probeError = `the unmutated model now generates ${tokens} instead of ${baseline}`;
    }
  } catch (e) {
    usable = false;
    probeError = `${e?.name}: ${e?.message}`;
  }
  const first = errors[0];
  await send({ type: 'done', id, outcome: first ? 'rejected' : 'ok', ...first, errors, usable, probeError });
}

let queue = Promise.resolve();
process.on('message', (message) => {
  if (message?.type !== 'case') return;
  // one case at a time, in arrival order (the parent sends the next only after 'done' anyway)
  queue = queue.then(() => runCase(message.id, message.path));
});
process.on('disconnect', () => {
  probeModel.dispose();
  process.exit(0);
});
await send({ type: 'ready' });
