// Strict options: every public options object rejects an unknown key with a TypeError that names
// it and, for a typo, the nearest known key. The last test scans lib/ for options interfaces, so
// a new one without a case here fails.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  analyzeLayers,
  ChatSession,
  createModel,
  fitDraftHead,
  loadModel,
  PLAIN_CHAT_TEMPLATE,
  quantizeModel,
  startRpcServer,
  sweep,
  trainModel,
} from '../lib/index.js';
import {
  cca,
  crossValidateRegularization,
  createSdrModel,
  pca,
  pls,
  rcca,
  rccaCv,
  reconstructedCorrelation,
  runSyntheticSweep,
} from '../lib/analysis/index.js';
import { modelFixture, STORIES } from './helpers.js';

/** `call` throws or rejects with a TypeError naming `key` (and suggesting `near`, when given). */
async function expectUnknown(call: () => unknown, key: string, near?: string): Promise<void> {
  let error: unknown;
  try {
    await call();
  } catch (e) {
    error = e;
  }
  expect(error, `unknown option ${key} was accepted`).toBeInstanceOf(TypeError);
  expect((error as Error).message).toContain(`unknown option "${key}"`);
  if (near) expect((error as Error).message).toContain(`did you mean "${near}"?`);
}

const X = [
  [1, 2],
  [2, 1],
  [3, 5],
  [4, 3],
  [5, 6],
  [6, 4],
];
const Y = [
  [2, 1],
  [1, 3],
  [4, 2],
  [3, 5],
  [6, 4],
  [5, 7],
];

/** Each public options type and a call that passes it a misspelled key. */
const CASES: Record<string, (f: ReturnType<typeof modelFixture>) => Promise<void>> = {
  LoadModelOptions: () => expectUnknown(() => loadModel(STORIES, { gpuLayerz: 1 } as never), 'gpuLayerz', 'gpuLayers'),
  ContextOptions: (f) => expectUnknown(() => f.model.createContext({ contextSzie: 64 } as never), 'contextSzie', 'contextSize'),
  GenerateOptions: (f) => expectUnknown(() => f.ctx.generate('Once', { maxTokenz: 2 } as never), 'maxTokenz', 'maxTokens'),
  SamplingOptions: (f) => expectUnknown(() => f.ctx.generate('Once', { temprature: 1 } as never), 'temprature', 'temperature'),
  SelfSpeculativeOptions: (f) =>
    expectUnknown(() => f.ctx.generate('Once', { selfSpeculative: { exitLayer: 2, draftTokenz: 2 } } as never), 'draftTokenz', 'draftTokens'),
  LookupOptions: (f) => expectUnknown(() => f.ctx.generate('Once', { lookup: { maxTokenz: 2 } } as never), 'maxTokenz', 'maxTokens'),
  FreeDraftOptions: (f) => expectUnknown(() => f.ctx.generate('Once', { predicton: 'x' } as never), 'predicton', 'prediction'),
  DecodeLayersOptions: (f) => expectUnknown(() => f.ctx.decodeLayers({ tokens: [1], outputz: 'all' } as never), 'outputz', 'outputs'),
  TokenizeOptions: async (f) => {
    await expectUnknown(() => f.model.tokenize('x', { addBoss: true } as never), 'addBoss', 'addBos');
    await expectUnknown(() => f.model.tokenizeAsync('x', { specal: true } as never), 'specal', 'special');
    await expectUnknown(() => f.model.detokenize([1], { specal: true } as never), 'specal', 'special');
  },
  ChatTemplateOptions: (f) =>
    expectUnknown(
      () => f.model.applyChatTemplate([{ role: 'user', content: 'x' }], { template: PLAIN_CHAT_TEMPLATE, addGenerationPromt: true } as never),
      'addGenerationPromt',
      'addGenerationPrompt',
    ),
  ChatSessionOptions: (f) => expectUnknown(() => new ChatSession(f.ctx, { systemPromt: 'x' } as never), 'systemPromt', 'systemPrompt'),
  FitDraftHeadOptions: async (f) => {
    await expectUnknown(() => fitDraftHead(f.ctx, { exitLayer: 2, stepz: 1 } as never), 'stepz', 'steps');
    await expectUnknown(() => fitDraftHead(f.ctx, { exitLayer: 2, selfGenerate: { positionz: 8 } } as never), 'positionz', 'positions');
  },
  SweepOptions: (f) => expectUnknown(() => sweep(f.ctx, { repeatz: 1 } as never), 'repeatz', 'repeats'),
  LayerAnalysisOptions: (f) => expectUnknown(() => analyzeLayers(f.ctx, undefined, { layerz: [1] } as never), 'layerz', 'layers'),
  RpcServerOptions: () => expectUnknown(() => startRpcServer({ prot: 1 } as never), 'prot', 'port'),
  QuantizeOptions: () => expectUnknown(() => quantizeModel(STORIES, '/tmp/never-written.gguf', 'Q8_0', { thredas: 1 } as never), 'thredas', 'threads'),
  TrainModelOptions: async () => {
    await expectUnknown(
      () => trainModel(STORIES, { output: '/tmp/never-written.gguf', data: { text: 'x' }, steps: 1, learningRat: 1 } as never),
      'learningRat',
      'learningRate',
    );
    await expectUnknown(
      () => trainModel(STORIES, { output: '/tmp/never-written.gguf', data: { text: 'x' }, steps: 1, layerDropout: { pmax: 0.1 } } as never),
      'pmax',
      'pMax',
    );
    await expectUnknown(
      () => trainModel(STORIES, { output: '/tmp/never-written.gguf', data: { text: 'x' }, steps: 1, earlyExitLoss: { scale: 1, curiculum: 'none' } } as never),
      'curiculum',
      'curriculum',
    );
  },
  CreateModelSpec: async () => {
    const e = await createModel('/tmp/never-written.gguf', { layerz: 2 } as never).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toContain('unknown spec key "layerz"');
  },
  AnalysisOptions: async () => {
    await expectUnknown(() => pca(X, { k: 1, kk: 1 } as never), 'kk', 'k');
    await expectUnknown(() => pls(X, Y, { k: 1, kk: 1 } as never), 'kk', 'k');
    await expectUnknown(() => cca(X, Y, { k: 1, kk: 1 } as never), 'kk', 'k');
    await expectUnknown(() => rcca(X, Y, { k: 1, regularisation: 0.1 } as never), 'regularisation', 'regularization');
    await expectUnknown(() => rccaCv(X, Y, { k: 1, fold: 2 } as never), 'fold', 'folds');
    await expectUnknown(() => crossValidateRegularization(X, Y, { k: 1, fold: 2 } as never), 'fold', 'folds');
    await expectUnknown(
      () => createSdrModel({ dx: 2, dy: 2, sharedSignals: 1, selfSignals: 0, snrShared: 1, snrSelf: 1, seed: 1, sed: 1 } as never),
      'sed',
      'seed',
    );
    await expectUnknown(() => runSyntheticSweep({ repeat: 1 } as never), 'repeat', 'repeats');
    await expectUnknown(() => reconstructedCorrelation(X, Y, { shuffle: 1 } as never), 'shuffle', 'shuffles');
  },
};

describe('strict options', () => {
  const f = modelFixture(() => STORIES, { threads: 1 });

  for (const [name, run] of Object.entries(CASES)) {
    it(`${name}: an unknown key is a TypeError naming it and the nearest known key`, () => run(f));
  }

  it('the context is still usable, and a key far from every known one gets no suggestion', async () => {
    let error: unknown;
    try {
      f.ctx.generate('Once', { zzzzzzzzzz: 1 } as never);
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toMatch(/unknown option "zzzzzzzzzz"; known options: /);
    expect((error as Error).message).not.toContain('did you mean');
    await expect(f.ctx.generate('Once', { maxTokens: 2 }).result).resolves.toBeDefined();
  });

  it('covers every options interface that lib/ exports', () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib');
    const found = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name));
        else if (e.name.endsWith('.ts')) {
          for (const m of readFileSync(join(dir, e.name), 'utf8').matchAll(/^export interface (\w+Options)\b/gm)) found.add(m[1]);
        }
      }
    };
    walk(root);
    // what the addon takes (TypeScript validates it before), a renderer's own arguments and the GGUF
    // writer's (neither takes user input); the training recipe's parts (in TrainModelOptions) and the
    // analysis toolkit's (in AnalysisOptions) have their cases above
    const internal = new Set([
      'NativeDecodeOptions',
      'NativeDraftOptions',
      'NativeRunOptions',
      'NativeContextOptions',
      'NativeTrainOptions',
      'NativeTrainerOptions',
      'RenderChatOptions',
      'WriteGgufOptions',
      'LayerDropoutOptions',
      'EarlyExitLossOptions',
      'CcaOptions',
      'RccaOptions',
      'PlsOptions',
      'PcaOptions',
      'RccaCvOptions',
      'SdrModelOptions',
      'SyntheticSweepOptions',
      'ReconstructedCorrelationOptions',
    ]);
    const covered = new Set([...Object.keys(CASES), ...internal]);
    const missing = [...found].filter((n) => !covered.has(n));
    expect(missing, 'options interfaces without a strict-options case').toEqual([]);
  });
});
