#!/usr/bin/env node
// The `layerskip` command line: generate, info, quantize (and the benchmark / analysis commands
// registered in cli-commands.ts).
import { parseArgs } from 'node:util';
import { loadModel } from './model.js';
import { DEMO_MODEL_PATH } from './demo-model.js';
import { quantizeModel, QUANTIZATION_TYPES, type QuantizationType } from './quantize.js';
import type { GenerateOptions } from './context.js';
import * as extra from './cli-commands.js';

const USAGE = `Usage:
  layerskip generate [-m MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S]
                     [--threads T] [--ctx N] [--exit-layer E --draft D [--adaptive] [--verify cached|full]
                     [--draft-head FILE]]
  layerskip info -m MODEL
  layerskip quantize SOURCE DESTINATION TYPE      (TYPE: ${QUANTIZATION_TYPES.join(', ')})
`;

function fail(message: string): never {
  process.stderr.write(`layerskip: ${message}\n`);
  process.exit(2);
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${name} must be a number, got ${v}`);
  return n;
}

async function generate(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', short: 'm' },
      prompt: { type: 'string', short: 'p' },
      'max-tokens': { type: 'string', short: 'n' },
      temp: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      threads: { type: 'string', short: 't' },
      ctx: { type: 'string', short: 'c' },
      'exit-layer': { type: 'string' },
      draft: { type: 'string' },
      adaptive: { type: 'boolean' },
      verify: { type: 'string' },
      stop: { type: 'string', multiple: true },
      'draft-head': { type: 'string' },
    },
  });
  if (values.prompt === undefined) fail('generate needs -p PROMPT');
  if (!values.model) process.stderr.write(`layerskip: no -m MODEL given; using the demo model ${DEMO_MODEL_PATH} (stories260K, see models/README.md)\n`);
  const model = await loadModel(values.model ?? DEMO_MODEL_PATH);
  try {
    const ctx = await model.createContext({ threads: num('threads', values.threads), contextSize: num('ctx', values.ctx) });
    const options: GenerateOptions = {
      maxTokens: num('max-tokens', values['max-tokens']) ?? 128,
      temperature: num('temp', values.temp),
      topK: num('top-k', values['top-k']),
      topP: num('top-p', values['top-p']),
      seed: num('seed', values.seed),
      stop: values.stop,
    };
    if (values['exit-layer'] !== undefined) {
      options.selfSpeculative = {
        exitLayer: num('exit-layer', values['exit-layer'])!,
        draftTokens: num('draft', values.draft),
        adaptive: values.adaptive,
        verification: values.verify as 'cached' | 'full' | undefined,
        draftHead: values['draft-head'],
      };
    } else if (values.draft !== undefined || values.adaptive || values['draft-head'] !== undefined) {
      fail('--draft, --adaptive and --draft-head need --exit-layer');
    }
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    options.signal = controller.signal;
    const gen = ctx.generate(values.prompt, options);
    process.stdout.write(values.prompt);
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
      process.stderr.write(
        `self-speculative: exit layer ${s.exitLayer}/${model.layerCount}, drafted ${s.drafted}, accepted ${s.accepted} ` +
          `(${(s.acceptanceRate * 100).toFixed(1)}%), corrections ${s.corrections}, rounds ${s.rounds}, ` +
          `${s.tokensPerRound.toFixed(2)} tokens/round; draft ${s.draftMs.toFixed(1)} ms, verify ${s.verifyMs.toFixed(1)} ms, ` +
          `sampling ${s.samplingMs.toFixed(1)} ms\n`,
      );
    }
  } finally {
    model.dispose();
  }
}

async function info(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string', short: 'm' }, json: { type: 'boolean' } } });
  if (!values.model) fail('info needs -m MODEL');
  const model = await loadModel(values.model);
  const i = model.info;
  if (values.json) process.stdout.write(JSON.stringify(i, null, 2) + '\n');
  else {
    const rows: [string, unknown][] = [
      ['architecture', i.architecture], ['name', i.name], ['description', i.description], ['layers', i.layerCount],
      ['embedding size', i.embeddingSize], ['heads', `${i.headCount} (KV ${i.headCountKv})`], ['vocabulary', i.vocabularySize],
      ['training context', i.trainContextLength], ['parameters', i.parameterCount], ['size (bytes)', i.sizeBytes],
      ['special tokens', `bos ${i.specialTokens.bos}, eos ${i.specialTokens.eos}, eot ${i.specialTokens.eot}, add bos ${i.specialTokens.addBos}`],
      ['chat template', i.chatTemplate ? `${i.chatTemplate.length} characters` : 'none'],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(18)} ${v}\n`);
  }
  model.dispose();
}

async function quantize(argv: string[]): Promise<void> {
  const [src, dst, type] = argv;
  if (!src || !dst || !type) fail('quantize needs SOURCE DESTINATION TYPE');
  await quantizeModel(src, dst, type as QuantizationType);
  process.stderr.write(`wrote ${dst}\n`);
}

export const commands: Record<string, (argv: string[]) => Promise<void>> = { generate, info, quantize };

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  Object.assign(commands, extra.commands);
  if (!cmd || cmd === '--help' || cmd === '-h' || !commands[cmd]) {
    process.stdout.write(USAGE + extra.usage);
    process.exit(cmd && !['--help', '-h'].includes(cmd) ? 2 : 0);
  }
  await commands[cmd](rest);
}

main().catch((e: Error) => fail(e.message));
