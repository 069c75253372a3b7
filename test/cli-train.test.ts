// `layerskip train` through the built CLI (dist/cli/index.js, run with node in a child process):
// from scratch (--init) and continual (--model), the baseline flags, usage errors (exit 2),
// runtime errors (exit 1: a quantized model, data shorter than a context), and Ctrl-C, which
// writes a checkpoint and exits 130, then --resume runs to the end. Every run is a tiny model
// (2 layers, width 32, context 16, batch 2) trained for a few steps on README.md.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, quantizeModel } from '../lib/index.js';
import { STORIES } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli', 'index.js');
if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build`);
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
const work = mkdtempSync(join(tmpdir(), 'layerskip-cli-train-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const TEXT = join(root, 'README.md');
const EVAL_TEXT = join(root, 'models', 'README.md');
const SHAPE = ['--context', '16', '--batch', '2', '--threads', '1'];
const TINY = ['--init', '2,32,4,64', '--tokenizer', STORIES, '--text', TEXT, ...SHAPE];
const TABLE = /layer\s+cross-entropy\s+accuracy\s+agreement\n\s+1\s+\d+\.\d+\s+\d\.\d+\s+\d\.\d+\n\s+2\s+\d+\.\d+\s+\d\.\d+\s+1\.0000\s+\(final\)/;

describe('layerskip train', () => {
  const scratch = join(work, 'scratch.gguf');

  it('from scratch (--init): writes --out, prints progress and the summary, and the model loads', async () => {
    const r = run(
      'train',
      ...TINY,
      '--eval-text',
      EVAL_TEXT,
      '--steps',
      '20',
      '--eval-interval',
      '10',
      '--layer-dropout',
      '0.1',
      '--curriculum',
      'rotational',
      '--seed',
      '3',
      '--out',
      scratch,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(scratch)).toBe(true);
    expect(existsSync(`${scratch}.init.gguf`)).toBe(true);
    expect(JSON.parse(readFileSync(`${scratch}.train.json`, 'utf8'))).toMatchObject({ step: 20, steps: 20, seed: 3 });
    expect(r.stdout).toMatch(/^trained .*scratch\.gguf: 20 steps, 640 tokens; \d+\.\d s, \d+ tokens\/s; final train loss \d+\.\d+; perplexity \d+\.\d+\n/);
    expect(r.stdout).toMatch(TABLE);
    // stderr is a pipe: whole lines, no carriage returns; the intermediate evaluation has its table
    expect(r.stderr).toMatch(/^step 1\/20 \[#*\.*\] loss \d+\.\d+ +\d+ tokens\/s +ETA /m);
    expect(r.stderr).toMatch(/^step 20\/20 \[#{24}\]/m);
    expect(r.stderr).toMatch(/evaluation at step 10\/20:\n/);
    expect(r.stderr).toMatch(TABLE);
    expect(r.stderr).not.toContain('\r');
    const model = await loadModel(scratch);
    try {
      expect(model.layerCount).toBe(2);
      expect(model.info.embeddingSize).toBe(32);
    } finally {
      model.dispose();
    }
  }, 60_000);

  it('continual training from --model', async () => {
    const out = join(work, 'continual.gguf');
    const r = run(
      'train',
      '--model',
      STORIES,
      '--text',
      TEXT,
      ...SHAPE,
      '--steps',
      '8',
      '--layer-dropout',
      '0.2',
      '--dropout-scale',
      'linear',
      '--curriculum',
      'gradual',
      '--early-exit-scale',
      '1',
      '--lr',
      '1e-4',
      '--warmup',
      '2',
      '--out',
      out,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/: 8 steps, 256 tokens; .*perplexity n\/a \(no --eval-text\)/);
    expect(existsSync(`${out}.init.gguf`)).toBe(false);
    const model = await loadModel(out);
    try {
      expect(model.layerCount).toBe(5);
    } finally {
      model.dispose();
    }
  }, 60_000);

  it('the baseline flags (--layer-dropout 0 --curriculum none) with a --tokens budget', () => {
    const out = join(work, 'baseline.gguf');
    const r = run(
      'train',
      ...TINY,
      '--layer-dropout',
      '0',
      '--curriculum',
      'none',
      '--tokens',
      '100',
      '--eval-text',
      EVAL_TEXT,
      '--checkpoint-interval',
      '2',
      '--out',
      out,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/: 4 steps, 128 tokens;/); // ceil(100 / (2 x 16))
    expect(r.stdout).toMatch(TABLE);
    expect(r.stderr).toMatch(/checkpoint written to .*baseline\.gguf at step 2\n/);
  }, 60_000);

  it.each([
    [['--curriculum', 'sideways'], /--curriculum must be rotational, gradual or none, got "sideways"/],
    [['--layer-dropout', '2'], /--layer-dropout must be a number >= 0 <= 1, got "2"/],
    [['--dropout-scale', 'log', '--layer-dropout', '0.1'], /--dropout-scale must be exp or linear/],
    [['--dropout-scale', 'exp'], /--dropout-scale and --from-scratch need --layer-dropout P > 0/],
    [['--rotation', '3'], /--rotation needs --curriculum rotational/],
    [['--early-exit-scale', '0.5'], /--early-exit-scale needs --curriculum rotational or gradual/],
    [['--context', '1'], /--context must be an integer >= 2/],
    [['--lr', 'fast'], /--lr must be a number/],
    [['--tokens', '64'], /one budget: --steps N or --tokens N/],
    [['--eval-interval', '5'], /--eval-interval needs --eval-text/],
    [['--bogus'], /Unknown option '--bogus'/],
  ])('%j exits 2 with a message naming the flag', (extra, message) => {
    const r = run('train', ...TINY, '--steps', '2', '--out', join(work, 'never.gguf'), ...(extra as string[]));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr).toContain('layerskip train');
    expect(existsSync(join(work, 'never.gguf.init.gguf'))).toBe(false);
  });

  it.each([
    [['--model', STORIES, ...TINY, '--steps', '2', '--out', 'x.gguf'], /give --model FILE or --init LAYERS,DIM,HEADS,FF, not both/],
    [['--text', TEXT, '--steps', '2', '--out', 'x.gguf'], /train needs --model FILE .* or --init LAYERS,DIM,HEADS,FF/],
    [[...TINY, '--steps', '2'], /train needs --out FILE/],
    [['--init', '2,32,4', '--tokenizer', STORIES, '--text', TEXT, '--steps', '2', '--out', 'x.gguf'], /--init needs LAYERS,DIM,HEADS,FF/],
    [
      ['--init', '2,30,4,64', '--tokenizer', STORIES, '--text', TEXT, '--steps', '2', '--out', 'x.gguf'],
      /--init: DIM \(30\) must be a multiple of HEADS \(4\)/,
    ],
    [['--init', '2,32,4,64', '--text', TEXT, '--steps', '2', '--out', 'x.gguf'], /--init needs --tokenizer FILE/],
    [['--model', STORIES, '--tokenizer', STORIES, '--text', TEXT, '--steps', '2', '--out', 'x.gguf'], /--tokenizer is for --init/],
    [['--model', STORIES, '--steps', '2', '--out', 'x.gguf'], /train needs --text FILE/],
  ])('%j exits 2 with a message naming the flag', (args, message) => {
    const r = run('train', ...(args as string[]));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr).toContain('Usage:');
  });

  it('--help prints the usage with train in it', () => {
    const r = run('train', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/layerskip train \(--model FILE \| --init LAYERS,DIM,HEADS,FF --tokenizer FILE\)/);
    expect(run('--help').stdout).toContain('layerskip train');
  });

  it('a quantized model exits 1 saying that training needs F32 or F16 weights', async () => {
    const q8 = join(work, 'q8.gguf');
    await quantizeModel(STORIES, q8, 'Q8_0');
    const r = run('train', '--model', q8, '--text', TEXT, ...SHAPE, '--steps', '2', '--out', join(work, 'from-q8.gguf'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^layerskip train: training needs F32 or F16 weights; .*q8\.gguf has .*Q8_0/);
    expect(r.stderr).not.toContain('Usage:');
    expect(existsSync(join(work, 'from-q8.gguf'))).toBe(false);
  }, 60_000);

  it('runtime failures exit 1 with the reason: short data, a missing text file, nothing to resume, an unwritable --out', () => {
    const short = join(work, 'short.txt');
    writeFileSync(short, 'Hi.');
    const a = run('train', '--model', STORIES, '--text', short, ...SHAPE, '--steps', '2', '--out', join(work, 'short.gguf'));
    expect(a.status).toBe(1);
    expect(a.stderr).toMatch(/^layerskip train: the training data holds \d+ tokens, fewer than one context \(17/);
    const b = run('train', '--model', STORIES, '--text', join(work, 'missing.txt'), ...SHAPE, '--steps', '2', '--out', join(work, 'm.gguf'));
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/^layerskip train: --text: cannot read .*missing\.txt/);
    const c = run('train', '--model', STORIES, '--text', TEXT, ...SHAPE, '--steps', '2', '--resume', '--out', join(work, 'fresh.gguf'));
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(/^layerskip train: nothing to resume: .*fresh\.gguf/);
    const d = run('train', '--model', STORIES, '--text', TEXT, ...SHAPE, '--steps', '2', '--out', join(work, 'no', 'such', 'dir.gguf'));
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(/^layerskip train: cannot write .*dir\.gguf/);
  }, 60_000);

  it('Ctrl-C (SIGINT) writes a checkpoint and exits 130; --resume continues it to the end', async () => {
    const out = join(work, 'interrupted.gguf');
    const steps = 2000; // a few seconds: still running when the first progress line appears
    const args = ['train', ...TINY, '--steps', String(steps), '--layer-dropout', '0.1', '--curriculum', 'rotational', '--out', out];
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const t0 = Date.now();
    while (!/^step \d+\/2000 /m.test(err)) {
      if (Date.now() - t0 > 60_000) throw new Error(`no progress line; stderr: ${err}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGINT');
    expect(await exited, err).toBe(130);
    const m = /interrupted: checkpoint written to (.*) at step (\d+); continue with --resume\n/.exec(err);
    expect(m, err).not.toBeNull();
    expect(m![1]).toBe(out);
    const at = Number(m![2]);
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(steps);
    expect(JSON.parse(readFileSync(`${out}.train.json`, 'utf8'))).toMatchObject({ step: at, steps });
    const loaded = await loadModel(out); // the checkpoint is a whole model
    loaded.dispose();

    const r = run(...args, '--resume');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`resuming ${out} at step ${at}/${steps}`);
    expect(r.stderr).toMatch(new RegExp(`^step ${at + 1}/${steps} `, 'm'));
    expect(r.stdout).toMatch(new RegExp(`: ${steps} steps, ${steps * 32} tokens \\(resumed at step ${at}\\);`));
    expect(JSON.parse(readFileSync(`${out}.train.json`, 'utf8'))).toMatchObject({ step: steps, steps });
  }, 120_000);
});
