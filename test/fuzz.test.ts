// The fuzz harness (test/fuzz/): mutated copies of the demo model through the built library in
// worker processes. No case may crash or hang a worker or leave it unusable, and every rejection
// must name its reason. `npm run fuzz` runs 5000 cases; this runs 300 (seeds 1..300).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DIST_ENTRY, distIsStale, formatReport, isVagueRejection, reproduce, runFuzz } from './fuzz/harness.js';
import { MUTATION_KINDS, loadSeedModel, mutateModel } from './fuzz/mutate.js';
import { STORIES } from './helpers.js';

if (distIsStale()) console.warn(`${DIST_ENTRY} is missing or older than lib/: the fuzz workers run the last build (npm run build)`);
const work = mkdtempSync(join(tmpdir(), 'layerskip-fuzz-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('mutations', () => {
  const seed = loadSeedModel(STORIES); // throws unless the lenient encoder reproduces the seed file exactly

  it('are deterministic per case seed and cover every kind in 300 cases', () => {
    const kinds = new Set<string>();
    for (let s = 1; s <= 300; s++) kinds.add(mutateModel(seed, s).kind);
    expect([...kinds].sort()).toEqual([...MUTATION_KINDS].sort());
    const a = mutateModel(seed, 12345);
    const b = mutateModel(seed, 12345);
    expect(b.kind).toBe(a.kind);
    expect(b.detail).toBe(a.detail);
    expect(b.bytes.equals(a.bytes)).toBe(true);
    const file = join(work, 'repro.gguf');
    expect(reproduce(seed, 12345, file).detail).toBe(a.detail);
    expect(readFileSync(file).equals(a.bytes)).toBe(true);
  });
});

describe('the harness', () => {
  it('survives workers that crash and hang, counts them with their stage, and goes on', async () => {
    // a stand-in worker, by case id mod 5: 1 aborts in a stage, 2 never answers, 3 rejects,
    // 4 passes and then aborts (a late crash, blamed on that case), 0 passes
    const fake = join(work, 'fake-worker.mjs');
    writeFileSync(
      fake,
      `
      const send = (m) => new Promise((r) => process.send(m, r));
      process.on('message', async ({ id }) => {
        await send({ type: 'stage', id, stage: 'generate-plain' });
        if (id % 5 === 1) process.abort();
        if (id % 5 === 2) return;
        const errors = id % 5 === 3 ? [{ stage: 'load', code: 'ERR_X', message: 'failed to load model /tmp/a.gguf: tokens 3 and 4 have the same text' }] : [];
        await send({ type: 'done', id, outcome: errors.length ? 'rejected' : 'ok', ...errors[0], errors, usable: true });
        if (id % 5 === 4) process.abort();
      });
      process.on('disconnect', () => process.exit(0));
      await send({ type: 'ready' });
    `,
    );
    const report = await runFuzz({ seedModel: STORIES, cases: 10, firstSeed: 1, jobs: 2, timeoutMs: 1500, workerPath: fake });
    expect(report.totals).toEqual({ ok: 2, rejected: 2, crash: 4, hang: 2, unusable: 0 });
    expect(report.failures.map((f) => [f.seed, f.outcome, f.stage])).toEqual([
      [1, 'crash', 'generate-plain'],
      [2, 'hang', 'generate-plain'],
      [4, 'crash', 'after-done'],
      [6, 'crash', 'generate-plain'],
      [7, 'hang', 'generate-plain'],
      [9, 'crash', 'after-done'],
    ]);
    expect(report.failures[0].signal).toBe('SIGABRT');
    expect(report.rejectionsByCause.map((c) => [c.cause, c.count])).toEqual([['ERR_X', 2]]);
    expect(report.results.map((r) => r.seed)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]); // every case once
  }, 30_000);

  it('tells a reason from a bare "failed to load model"', () => {
    const vague = (message: string, extra = {}) => isVagueRejection({ stage: 'load', message, ...extra });
    expect(vague('failed to load model /tmp/x.gguf: llama_model_load_from_file_impl: failed to load model', { code: 'ERR_MODEL_LOAD' })).toBe(true);
    expect(vague('failed to load model /tmp/x.gguf')).toBe(true);
    expect(vague('native error: ')).toBe(true);
    expect(vague('failed to load model /tmp/x.gguf: tensor blk.0.attn_q.weight has wrong shape', { code: 'ERR_MODEL_LOAD' })).toBe(false);
    expect(vague('invalid model file /tmp/x.gguf: tokens 3 and 4 have the same text "a"', { reason: 'vocabulary' })).toBe(false);
  });
});

describe('fuzzing the library', () => {
  it('300 mutated models: no crash, no hang, every rejection names its reason', async () => {
    const t0 = performance.now();
    // one worker: npm test runs two test files at once on 2 cores, and the timing tests beside this
    // one (test/event-loop.test.ts) must not be starved by fuzz workers
    const report = await runFuzz({ seedModel: STORIES, cases: 300, firstSeed: 1, jobs: 1, timeoutMs: 20_000 });
    const text = formatReport(report);
    console.log(`${text.split('\n').slice(0, 2).join('\n')} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    expect(report.cases).toBe(300);
    expect(report.totals.ok + report.totals.rejected + report.failures.length).toBe(300);
    expect(report.totals.ok).toBeGreaterThan(0); // the mutations are not all fatal: the compute stages run
    expect(
      report.failures.map((f) => `${f.outcome} seed ${f.seed} ${f.kind} at ${f.stage}: ${f.signature}`),
      text,
    ).toEqual([]);
    expect(
      report.vagueRejections.map((v) => `seed ${v.seed} ${v.kind}: ${v.errors![0].message}`),
      text,
    ).toEqual([]);
  }, 120_000);
});
