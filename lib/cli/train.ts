// `layerskip train`: LayerSkip training (layer dropout + early-exit loss) of a GGUF model, or the
// ordinary baseline (--layer-dropout 0 --curriculum none), continual from --model or from scratch
// with --init (createModel writes <out>.init.gguf first). A progress line on stderr; Ctrl-C stops
// after the current step and writes a checkpoint that --resume continues.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createModel } from '../tools/training/create-model.js';
import { trainModel, type ExitEvaluation, type TrainModelOptions, type TrainModelResult, type TrainProgress } from '../tools/training/train.js';
import { intFlag, intListFlag, numberFlag, parse, required, UsageError } from './args.js';

export const trainUsage = `  layerskip train (--model FILE | --init LAYERS,DIM,HEADS,FF --tokenizer FILE) --text FILE ... --out FILE
                  (--steps N | --tokens N) [--eval-text FILE ...] [--context N] [--batch N] [--lr X]
                  [--warmup N] [--layer-dropout P [--dropout-scale exp|linear] [--from-scratch|--no-from-scratch]]
                  [--curriculum rotational|gradual|none [--early-exit-scale S] [--rotation R]]
                  [--eval-interval N] [--checkpoint-interval N] [--threads T] [--seed S] [--resume]
                  (defaults: context 128, batch 8, lr 1e-3, layer dropout 0, curriculum none: the
                   ordinary baseline; --from-scratch is on with --init; early-exit scale 0.2.
                   Ctrl-C writes a checkpoint to --out; --resume continues it with the same flags)
`;

const FLAGS = {
  model: { type: 'string', short: 'm' },
  init: { type: 'string' },
  tokenizer: { type: 'string' },
  text: { type: 'string', multiple: true },
  'eval-text': { type: 'string', multiple: true },
  tokens: { type: 'string' },
  steps: { type: 'string' },
  context: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  warmup: { type: 'string' },
  'layer-dropout': { type: 'string' },
  'dropout-scale': { type: 'string' },
  'from-scratch': { type: 'boolean' },
  'no-from-scratch': { type: 'boolean' },
  'early-exit-scale': { type: 'string' },
  curriculum: { type: 'string' },
  rotation: { type: 'string' },
  'eval-interval': { type: 'string' },
  'checkpoint-interval': { type: 'string' },
  threads: { type: 'string', short: 't' },
  seed: { type: 'string' },
  out: { type: 'string', short: 'o' },
  resume: { type: 'boolean' },
} as const;

interface InitSpec {
  layers: number;
  embeddingSize: number;
  heads: number;
  feedForwardSize: number;
}

function initSpec(v: string): InitSpec {
  const dims = intListFlag('init', v, 1)!;
  if (dims.length !== 4) throw new UsageError(`train: --init needs LAYERS,DIM,HEADS,FF (four integers, e.g. 4,256,4,688), got ${JSON.stringify(v)}`);
  const [layers, embeddingSize, heads, feedForwardSize] = dims;
  if (embeddingSize % heads !== 0 || (embeddingSize / heads) % 2 !== 0) {
    throw new UsageError(`train: --init: DIM (${embeddingSize}) must be a multiple of HEADS (${heads}) with an even quotient (the head size)`);
  }
  return { layers, embeddingSize, heads, feedForwardSize };
}

function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v))
    throw new UsageError(`train: --${flag} must be ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** The flags as trainModel options (everything checked here, so a bad value is a usage error). */
function fromFlags(argv: string[]) {
  const { values } = parse('train', argv, FLAGS);
  if (values.model !== undefined && values.init !== undefined) throw new UsageError('train: give --model FILE or --init LAYERS,DIM,HEADS,FF, not both');
  if (values.model === undefined && values.init === undefined)
    throw new UsageError('train needs --model FILE (continual training) or --init LAYERS,DIM,HEADS,FF with --tokenizer FILE (from scratch)');
  const init = values.init !== undefined ? initSpec(values.init) : undefined;
  if (init && values.tokenizer === undefined) throw new UsageError('train: --init needs --tokenizer FILE (a GGUF whose tokenizer the new model gets)');
  if (!init && values.tokenizer !== undefined) throw new UsageError('train: --tokenizer is for --init (a --model has its own tokenizer)');
  const out = required('train', '--out FILE', values.out);
  if (!values.text || values.text.length === 0) throw new UsageError('train needs --text FILE (repeatable: the training text)');
  if ((values.steps === undefined) === (values.tokens === undefined)) throw new UsageError('train needs one budget: --steps N or --tokens N (not both)');

  const pMax = numberFlag('layer-dropout', values['layer-dropout'], { min: 0, max: 1 }) ?? 0;
  const scale = oneOf('dropout-scale', values['dropout-scale'], ['exp', 'linear'] as const);
  if (values['from-scratch'] && values['no-from-scratch']) throw new UsageError('train: give --from-scratch or --no-from-scratch, not both');
  if (pMax === 0 && (scale !== undefined || values['from-scratch'] || values['no-from-scratch'])) {
    throw new UsageError('train: --dropout-scale and --from-scratch need --layer-dropout P > 0');
  }
  const fromScratch = values['from-scratch'] ? true : values['no-from-scratch'] ? false : init !== undefined;
  const curriculum = oneOf('curriculum', values.curriculum, ['rotational', 'gradual', 'none'] as const) ?? 'none';
  const exitScale = numberFlag('early-exit-scale', values['early-exit-scale'], { min: 0, max: 1e6 });
  const rotation = intFlag('rotation', values.rotation, 1, 1 << 16);
  if (curriculum === 'none' && exitScale !== undefined) throw new UsageError('train: --early-exit-scale needs --curriculum rotational or gradual');
  if (curriculum !== 'rotational' && rotation !== undefined) throw new UsageError('train: --rotation needs --curriculum rotational');
  const evalInterval = intFlag('eval-interval', values['eval-interval'], 1, 1e9);
  if (evalInterval !== undefined && !values['eval-text']) throw new UsageError('train: --eval-interval needs --eval-text FILE');
  const seed = intFlag('seed', values.seed, 0, 2 ** 31 - 1);

  const options: TrainModelOptions = {
    output: out,
    data: { files: values.text },
    evalData: values['eval-text'] ? { files: values['eval-text'] } : undefined,
    steps: intFlag('steps', values.steps, 1, 1e9),
    tokens: intFlag('tokens', values.tokens, 1, Number.MAX_SAFE_INTEGER),
    contextSize: intFlag('context', values.context, 2, 65536) ?? 128,
    batchSize: intFlag('batch', values.batch, 1, 4096) ?? 8,
    learningRate: numberFlag('lr', values.lr, { min: 1e-12, max: 10 }) ?? 1e-3,
    warmupSteps: intFlag('warmup', values.warmup, 0, 1e9),
    layerDropout: pMax > 0 ? { pMax, scale: scale ?? 'exp', fromScratch } : undefined,
    earlyExitLoss: curriculum !== 'none' ? { scale: exitScale ?? 0.2, curriculum, rotation } : undefined,
    evalInterval,
    checkpointInterval: intFlag('checkpoint-interval', values['checkpoint-interval'], 1, 1e9),
    threads: intFlag('threads', values.threads, 1, 512),
    seed,
    resume: values.resume === true,
    checkpointOnAbort: true,
  };
  return { options, model: values.model, init, tokenizer: values.tokenizer, seed: seed ?? 0 };
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const num = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

/** The per-exit table: one row per exit layer, the last the full model. */
export function formatExitTable(evaluation: readonly ExitEvaluation[]): string {
  const last = evaluation.length;
  const rows = evaluation.map(
    (e) =>
      `  ${String(e.layer).padStart(5)}  ${num(e.crossEntropy, 4).padStart(13)}  ${num(e.accuracy, 4).padStart(8)}  ${num(e.agreement, 4).padStart(9)}` +
      (e.layer === last ? '  (final)' : ''),
  );
  return `  layer  cross-entropy  accuracy  agreement\n${rows.join('\n')}\n`;
}

/** The progress line: redrawn in place on a terminal (about 10 per second), a line a second otherwise. */
function progressLine() {
  const tty = process.stderr.isTTY === true;
  let lastAt = -Infinity;
  let drawn = false;
  const clear = (): void => {
    if (tty && drawn) process.stderr.write('\r\x1b[K');
    drawn = false;
  };
  return {
    update(p: TrainProgress, force = false): void {
      const now = performance.now();
      if (!force && now - lastAt < (tty ? 100 : 1000) && p.step < p.steps) return;
      lastAt = now;
      const width = 24;
      const filled = Math.min(width, Math.round((width * p.step) / Math.max(p.steps, 1)));
      const line =
        `step ${p.step}/${p.steps} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] loss ${num(p.loss, 4)}  ` +
        `${Number.isFinite(p.tokensPerSecond) ? p.tokensPerSecond.toFixed(0) : '--'} tokens/s  ETA ${duration(p.etaSeconds)}`;
      if (tty) {
        process.stderr.write(`\r\x1b[K${line}`);
        drawn = true;
      } else process.stderr.write(`${line}\n`);
    },
    /** Writes `text` (whole lines) above the progress line. */
    print(text: string): void {
      clear();
      process.stderr.write(text);
    },
    end: clear,
  };
}

interface CheckpointState {
  step: number;
  steps: number;
  seed: number;
}

function readState(out: string): (CheckpointState & { mtimeMs: number }) | undefined {
  const file = `${out}.train.json`;
  try {
    return { ...(JSON.parse(readFileSync(file, 'utf8')) as CheckpointState), mtimeMs: statSync(file).mtimeMs };
  } catch {
    return undefined;
  }
}

/** An error's message as the CLI prints it (without the library function's own prefix). */
const message = (e: unknown): string => String((e as Error)?.message ?? e).replace(/^(trainModel|createModel): /, '');

function fail(text: string): never {
  process.stderr.write(`layerskip train: ${text}\n`);
  process.exit(1);
}

export async function trainCommand(argv: string[]): Promise<void> {
  const { options, model, init, tokenizer, seed } = fromFlags(argv);
  const out = options.output;
  for (const [flag, files] of [
    ['--text', options.data.files],
    ['--eval-text', options.evalData?.files],
  ] as const) {
    for (const f of files ?? []) {
      try {
        if (!statSync(f).isFile()) fail(`${flag}: ${f} is not a file`);
      } catch (e) {
        fail(`${flag}: cannot read ${f}: ${(e as Error).message}`);
      }
    }
  }
  const before = readState(out);
  if (options.resume && (!before || !existsSync(out))) fail(`nothing to resume: ${out} or ${out}.train.json is missing (run without --resume to start)`);
  if (!options.resume && before && before.step < before.steps) {
    process.stderr.write(`layerskip train: ${out} holds an unfinished run (step ${before.step}/${before.steps}); starting over (--resume continues it)\n`);
  }

  let source = model;
  if (init) {
    source = `${out}.init.gguf`;
    if (!options.resume || !existsSync(source)) {
      try {
        const r = await createModel(source, { ...init, tokenizer: tokenizer!, seed, contextLength: Math.max(2048, options.contextSize ?? 128) });
        process.stderr.write(`layerskip train: wrote the untrained model ${source} (${init.layers} layers, ${r.parameters} parameters)\n`);
      } catch (e) {
        fail(message(e));
      }
    }
  }

  const progress = progressLine();
  const controller = new AbortController();
  let interruptedAt: number | undefined;
  const onSigint = (): void => {
    if (interruptedAt !== undefined) {
      progress.print('layerskip train: interrupted again: exiting without waiting for the checkpoint\n');
      process.exit(130);
    }
    interruptedAt = Date.now();
    progress.print('layerskip train: interrupting: finishing the current step and writing a checkpoint (Ctrl-C again exits at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  if (options.resume) process.stderr.write(`layerskip train: resuming ${out} at step ${before!.step}/${before!.steps}\n`);

  let result: TrainModelResult;
  try {
    result = await trainModel(source!, {
      ...options,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'train') progress.update(p);
        else if (p.phase === 'eval' && p.evaluation && p.step < p.steps) {
          progress.print(`evaluation at step ${p.step}/${p.steps}:\n${formatExitTable(p.evaluation)}`);
          progress.update(p, true);
        } else if (p.phase === 'checkpoint' && p.step < p.steps) {
          progress.print(`checkpoint written to ${out} at step ${p.step}\n`);
          progress.update(p, true);
        }
      },
    });
  } catch (e) {
    progress.end();
    if (interruptedAt !== undefined && controller.signal.aborted && (e as Error)?.name === 'AbortError') {
      const state = readState(out);
      if (state && state.mtimeMs >= interruptedAt - 1000 && (!before || state.mtimeMs !== before.mtimeMs)) {
        process.stderr.write(`interrupted: checkpoint written to ${out} at step ${state.step}; continue with --resume\n`);
      } else if (state && existsSync(out) && state.step < state.steps) {
        process.stderr.write(`interrupted before a step finished: ${out} still holds the checkpoint at step ${state.step}; continue with --resume\n`);
      } else {
        process.stderr.write('interrupted before the first step finished: no checkpoint written\n');
      }
      process.exit(130);
    }
    fail(message(e));
  } finally {
    process.off('SIGINT', onSigint);
  }
  progress.end();

  const r = result;
  const perplexity = Number.isFinite(r.perplexity) ? r.perplexity.toFixed(3) : 'n/a (no --eval-text)';
  process.stdout.write(
    `trained ${out}: ${r.steps} steps, ${r.tokens} tokens` +
      (options.resume ? ` (resumed at step ${before!.step})` : '') +
      `; ${r.seconds.toFixed(1)} s, ${r.tokensPerSecond.toFixed(0)} tokens/s; ` +
      `final train loss ${num(r.trainLoss.at(-1) ?? Number.NaN, 4)}; perplexity ${perplexity}\n` +
      (r.evaluation.length > 0 ? `held-out per-exit evaluation:\n${formatExitTable(r.evaluation)}` : ''),
  );
}
