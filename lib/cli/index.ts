#!/usr/bin/env node
// The `layerskip` command line. Each command lives in its own module here; they share one argument
// parser (args.ts). Usage errors (unknown flags, bad values) exit with status 2 and the usage text;
// other failures exit with status 1 and the error's message.
import { existsSync, readFileSync } from 'node:fs';
import { DraftHead, isDraftHeadFile } from '../draft-head/draft-head.js';
import { layerRangeRefusal } from '../model-file/architectures.js';
import { loadModel } from '../runtime/model.js';
import { quantizeModel, QUANTIZATION_TYPES, type QuantizationType } from '../native/quantize.js';
import type { GenerateOptions } from '../runtime/context.js';
import { DEMO_MODEL_PATH } from '../util/demo-model.js';
import { analyzeCommand, analyzeUsage } from './analyze.js';
import { HelpRequested, intFlag, parse, required, UsageError } from './args.js';
import {
  GENERATION_FLAGS,
  checkExitLayerFlag,
  contextFromFlags,
  describeSources,
  speculationFromFlags,
  freeDraftsFromFlags,
  constraintFromFlags,
  samplingFromFlags,
} from './generation-flags.js';
import { calibrateCommand, calibrateUsage } from './calibrate.js';
import { chatCommand, chatUsage } from './chat.js';
import { rpcServerCommand, rpcServerUsage } from './rpc-server.js';
import { sweepCommand, sweepUsage } from './sweep.js';
import { trainCommand, trainUsage } from './train.js';

const USAGE = `Usage:
  layerskip --version
  layerskip generate [-m MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S]
                     [--repeat-penalty R]  (R > 1 penalizes the last 64 tokens, as llama.cpp; 1.1-1.3 stops loops)
                     [--threads T] [--ctx N] [--stop TEXT ...]
                     [--lookup on|off] [--prediction FILE] [--grammar FILE | --json-schema FILE]
                                            (lookup: draft from the context where its newest tokens
                                            occurred before, when measured acceptance says it pays;
                                            default on. prediction: the expected output, e.g. the
                                            text an edit rewrites; drafts follow it)
                     [--exit-layer E [--draft D] [--adaptive] [--verify cached|full] [--draft-head FILE]
                      [--overlap on|off]]  (overlap: draft the next round during verification; default off)
                     [--rpc HOST:PORT,... [--remote-layers N]]
                     (without -m: the bundled demo model, stories260K)
${chatUsage}${rpcServerUsage}  layerskip info -m MODEL [--json]
  layerskip quantize SOURCE DESTINATION TYPE      (TYPE: ${QUANTIZATION_TYPES.join(', ')})
${calibrateUsage}${analyzeUsage}${sweepUsage}${trainUsage}`;

async function generate(argv: string[]): Promise<void> {
  const { values } = parse('generate', argv, {
    ...GENERATION_FLAGS,
    prompt: { type: 'string', short: 'p' },
    adaptive: { type: 'boolean' },
    verify: { type: 'string' },
    overlap: { type: 'string' },
    stop: { type: 'string', multiple: true },
    rpc: { type: 'string' },
    'remote-layers': { type: 'string' },
  });
  const prompt = required('generate', '-p PROMPT', values.prompt);
  const options: GenerateOptions = {
    ...samplingFromFlags(values, 128),
    ...freeDraftsFromFlags('generate', values),
    ...constraintFromFlags('generate', values),
    stop: values.stop,
  };
  if (values.verify !== undefined && values.verify !== 'cached' && values.verify !== 'full') {
    throw new UsageError(`generate: --verify must be cached or full, got ${values.verify}`);
  }
  if (values.overlap !== undefined && values.overlap !== 'on' && values.overlap !== 'off') {
    throw new UsageError(`generate: --overlap must be on or off, got ${values.overlap}`);
  }
  const { exitLayer, draftHead } = speculationFromFlags('generate', values);
  if (exitLayer !== undefined) {
    options.selfSpeculative = {
      exitLayer,
      draftTokens: intFlag('draft', values.draft, 1),
      adaptive: values.adaptive,
      verification: values.verify as 'cached' | 'full' | undefined,
      draftHead,
      overlap: values.overlap === undefined ? undefined : values.overlap === 'on',
    };
    // an overlapped round is drafted by early exit ahead of time: no free drafts with it
    if (values.overlap === 'on') {
      if (values.lookup === 'on' || values.prediction !== undefined)
        throw new UsageError('generate: --overlap on cannot be combined with --lookup on or --prediction');
      options.lookup = false;
    }
  } else if (values.draft !== undefined || values.adaptive || values.verify !== undefined || values.overlap !== undefined) {
    throw new UsageError('generate: --draft, --adaptive, --verify and --overlap need --exit-layer (or a --draft-head file)');
  }
  if (!values.model) process.stderr.write(`layerskip: no -m MODEL given; using the demo model ${DEMO_MODEL_PATH} (stories260K, see models/README.md)\n`);
  const rpcServers = values.rpc
    ?.split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  const remoteLayers = intFlag('remote-layers', values['remote-layers'], 0);
  if (remoteLayers !== undefined && !rpcServers) throw new UsageError('generate: --remote-layers needs --rpc');
  const model = await loadModel(values.model ?? DEMO_MODEL_PATH, rpcServers ? { rpcServers, gpuLayers: remoteLayers } : {});
  try {
    checkExitLayerFlag('generate', exitLayer, model.layerCount);
    if (rpcServers) {
      const d = model.devices();
      const at = d.layers.map((dev, i) => `${i}:${dev}`).join(', ');
      process.stderr.write(`layerskip: layers ${at}; output head ${d.output}\n`);
    }
    const ctx = await model.createContext(contextFromFlags(values));
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    options.signal = controller.signal;
    const gen = ctx.generate(prompt, options);
    process.stdout.write(prompt);
    for await (const chunk of gen) process.stdout.write(chunk.text);
    process.stdout.write('\n');
    const r = await gen.result;
    const t = r.timings;
    process.stderr.write(
      `\n${t.generatedTokens} tokens in ${t.generateMs.toFixed(1)} ms: ${t.tokensPerSecond.toFixed(1)} tokens/s ` +
        `(prompt ${t.promptTokens} tokens in ${t.promptMs.toFixed(1)} ms; threads ${ctx.threads}; stop: ${r.stopReason})\n`,
    );
    if (r.speculative) {
      const s = r.speculative;
      const head =
        s.exitLayer === null
          ? 'speculative (free drafts only)'
          : `self-speculative: exit layer ${s.exitLayer}/${model.layerCount}, drafted ${s.drafted}, accepted ${s.accepted} ` +
            `(${(s.acceptanceRate * 100).toFixed(1)}%)`;
      process.stderr.write(
        `${head}, corrections ${s.corrections}, rounds ${s.rounds}, ` +
          `${s.tokensPerRound.toFixed(2)} tokens/round; draft ${s.draftMs.toFixed(1)} ms, verify ${s.verifyMs.toFixed(1)} ms, ` +
          `sampling ${s.samplingMs.toFixed(1)} ms` +
          (s.pipelinedRounds === undefined ? '' : `; overlapped: ${s.pipelinedRounds} rounds drafted during the previous verification`) +
          '\n' +
          describeSources(s),
      );
    }
  } finally {
    model.dispose();
  }
}

async function info(argv: string[]): Promise<void> {
  const { values } = parse('info', argv, { model: { type: 'string', short: 'm' }, json: { type: 'boolean' } });
  const path = required('info', '-m MODEL', values.model);
  // a draft head file (layerskip calibrate's output) is no model: describe the head
  if (existsSync(path) && isDraftHeadFile(path)) {
    const h = DraftHead.load(path);
    const summary = {
      kind: 'draft head',
      exitLayer: h.exitLayer,
      embeddingSize: h.embeddingSize,
      vocabularySize: h.vocabularySize,
      adapter: h.adapter !== null,
      draftVocabulary: h.tokenIds?.length ?? 'full',
      baseModel: h.baseModel,
      stats: h.stats,
    };
    if (values.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    else {
      process.stdout.write(`${path}: a draft head, not a model (use it with generate --draft-head on its model)\n`);
      for (const [k, v] of Object.entries(summary)) if (k !== 'stats' && k !== 'kind') process.stdout.write(`${k.padEnd(18)} ${v}\n`);
      if (h.stats) process.stdout.write(`${'agreement'.padEnd(18)} ${h.stats.agreementBefore.toFixed(3)} -> ${h.stats.agreementAfter.toFixed(3)} (held out)\n`);
    }
    return;
  }
  const model = await loadModel(path);
  const i = model.info;
  if (values.json) process.stdout.write(JSON.stringify(i, null, 2) + '\n');
  else {
    const rows: [string, unknown][] = [
      ['architecture', i.architecture],
      ['name', i.name],
      ['description', i.description],
      ['layers', i.layerCount],
      ['embedding size', i.embeddingSize],
      ['heads', `${i.headCount} (KV ${i.headCountKv})`],
      ['vocabulary', i.vocabularySize],
      ['training context', i.trainContextLength],
      ['parameters', i.parameterCount],
      ['size (bytes)', i.sizeBytes],
      ['special tokens', `bos ${i.specialTokens.bos}, eos ${i.specialTokens.eos}, eot ${i.specialTokens.eot}, add bos ${i.specialTokens.addBos}`],
      ['chat template', i.chatTemplate ? `${i.chatTemplate.length} characters` : 'none'],
      ['sliding window', i.slidingWindow || 'none'],
      ['layer ranges', layerRangeRefusal(i.architecture) ?? 'yes (early exit, self-speculative decoding, draft heads)'],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(18)} ${v}\n`);
  }
  model.dispose();
}

async function quantize(argv: string[]): Promise<void> {
  const { positionals } = parse('quantize', argv, {}, true);
  const [src, dst, type] = positionals;
  if (!src || !dst || !type || positionals.length > 3) throw new UsageError('quantize needs SOURCE DESTINATION TYPE');
  await quantizeModel(src, dst, type as QuantizationType);
  process.stderr.write(`wrote ${dst}\n`);
}

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  generate,
  chat: chatCommand,
  'rpc-server': rpcServerCommand,
  info,
  quantize,
  calibrate: calibrateCommand,
  analyze: analyzeCommand,
  sweep: sweepCommand,
  train: trainCommand,
};

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  if (cmd === '--version' || cmd === '-v') {
    // dist/cli/index.js and lib/cli/index.ts both sit two folders below the package root
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`layerskip ${pkg.version}\n`);
    return;
  }
  const run = commands[cmd];
  if (!run) throw new UsageError(`unknown command ${cmd}`);
  await run(rest);
}

main().catch((e: Error) => {
  if (e instanceof HelpRequested) {
    process.stdout.write(USAGE);
    return;
  }
  if (e instanceof UsageError) {
    process.stderr.write(`layerskip: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`layerskip: ${e.message}\n`);
  process.exit(1);
});
