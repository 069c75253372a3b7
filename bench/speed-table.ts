// Shared by the draft-head and architectures benchmarks: a fitted head cached under
// models-generated/, and a speed table of generations side by side in one run (tinybench, tasks
// interleaved per iteration; LAYERSKIP_BENCH_ITERATIONS, default 6).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { DraftHead, type Context, type Model, type SelfSpeculativeOptions } from 'layerskip';
import { ROOT } from './models.js';

const iterations = Number(process.env.LAYERSKIP_BENCH_ITERATIONS ?? 6);

/** A head fitted once and cached under models-generated/ (keyed by model file and options). */
export async function cachedHead(ctx: Context, name: string, fit: () => Promise<DraftHead>): Promise<DraftHead> {
  const file = join(ROOT, 'models-generated', `${name}.head.gguf`);
  if (existsSync(file)) {
    try {
      const h = DraftHead.load(file);
      if (h.baseModel === ctx.model.identity) return h;
    } catch {
      // refit below
    }
  }
  process.stderr.write(`[draft-head] calibrating ${name}...\n`);
  const t0 = performance.now();
  const h = await fit();
  h.save(file);
  const s = h.stats!;
  process.stderr.write(
    `[draft-head] ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s; held-out agreement ${s.agreementBefore.toFixed(3)} -> ${s.agreementAfter.toFixed(3)}\n`,
  );
  return h;
}

export async function speedTable(
  model: Model,
  ctx: Context,
  prompt: string,
  maxTokens: number,
  cases: [string, SelfSpeculativeOptions | undefined][],
): Promise<void> {
  const stats = new Map<string, { tokens: number; ms: number; acc: number; drafted: number; text: string }>();
  const bench = new Bench({ iterations, warmupIterations: 1, time: 0, warmupTime: 0 });
  for (const [label, spec] of cases) {
    stats.set(label, { tokens: 0, ms: 0, acc: 0, drafted: 0, text: '' });
    bench.add(label, async () => {
      const r = await ctx.generate(prompt, { maxTokens, selfSpeculative: spec }).result;
      const s = stats.get(label)!;
      s.tokens += r.tokens.length;
      s.ms += r.timings.generateMs;
      s.acc += r.speculative?.accepted ?? 0;
      s.drafted += r.speculative?.drafted ?? 0;
      s.text = r.text;
    });
  }
  await bench.run();
  const tps = (l: string) => (stats.get(l)!.tokens / stats.get(l)!.ms) * 1000;
  const base = tps(cases[0][0]);
  console.log(`\n${model.info.name || 'model'}: ${maxTokens} tokens, ${ctx.threads} thread(s), ${iterations} iterations (tasks in one run)\n`);
  console.log('| case | tokens/s | ratio to plain | acceptance | same text as plain |');
  console.log('|---|---:|---:|---:|---|');
  for (const [label] of cases) {
    const s = stats.get(label)!;
    console.log(
      `| ${label} | ${tps(label).toFixed(1)} | ${(tps(label) / base).toFixed(2)}x | ${s.drafted ? (s.acc / s.drafted).toFixed(3) : ''} | ${s.text === stats.get(cases[0][0])!.text ? 'yes' : 'NO'} |`,
    );
  }
  for (let i = 2; i < cases.length; i++) {
    const spec = cases[i][1];
    if (!spec?.draftHead) continue;
    // against the same (E, d) without a head
    const plainSpec = cases.find(([, o]) => o && !o.draftHead && o.exitLayer === spec.exitLayer && o.draftTokens === spec.draftTokens);
    if (plainSpec) console.log(`${cases[i][0]} / ${plainSpec[0]}: ${(tps(cases[i][0]) / tps(plainSpec[0])).toFixed(2)}x`);
  }
}
