// Self-speculative decoding over llama.cpp's RPC backend, on loopback: a model split across this
// process (layers [0, E) and the LM head: drafts never leave) and 2 RPC servers (layers [E, N)),
// behind a delaying proxy of 0, 1 and 5 ms each way, against the model loaded locally. Reports
// tokens/s and network round trips per token, plain and self-speculative, in one run.
// "overlapped" drafts the next round while this one is verified (selfSpeculative.overlap, a second
// draft-only context here); "self-speculative" drafts and verifies in turn (the default).
//   node bench/run.mjs rpc [repetitions=3] [tokensStories=64] [tokens100m=128] [models=stories,q4_0,f16]
import { loadModel, startRpcServer, type GenerateOptions } from 'layerskip';
import { benchModel, SHAPE_100M, STORIES, sourceModel } from './models.js';
import { startDelayProxy, type DelayProxy } from './tcp-delay-proxy.js';
import { median } from './stats.js';

const REPETITIONS = Number(process.argv[2] ?? 3);
// 1 thread per process: the client and both servers share this machine's 2 cores, but only one of
// them computes at a time (a single sequence is a pipeline), so each has a core as on a host of its own
const THREADS = 1; // each RPC server
const CLIENT_THREADS = 1; // this process (the drafts run here)
const servers = await Promise.all([startRpcServer({ port: 0, threads: THREADS }), startRpcServer({ port: 0, threads: THREADS })]);

interface Row {
  model: string;
  link: string;
  mode: string;
  tps: number;
  trips: number;
  perRound?: number;
  speedup?: number;
}
const rows: Row[] = [];

async function run(path: string, label: string, exitLayer: number, draftLengths: number[], tokens: number): Promise<void> {
  const modes: [string, GenerateOptions][] = [
    ['plain', { maxTokens: tokens }],
    ...draftLengths.flatMap((d): [string, GenerateOptions][] => [
      [`self-speculative E=${exitLayer} d=${d}`, { maxTokens: tokens, selfSpeculative: { exitLayer, draftTokens: d, overlap: false } }],
      [`overlapped E=${exitLayer} d=${d}`, { maxTokens: tokens, selfSpeculative: { exitLayer, draftTokens: d, overlap: true } }],
    ]),
  ];
  const prompt = [1, 300, 301, 302];
  const probe = await loadModel(path);
  const layers = probe.layerCount;
  probe.dispose();
  for (const delay of [null, 0, 1, 5] as (number | null)[]) {
    let proxies: DelayProxy[] = [];
    let options = {};
    if (delay !== null) {
      proxies = await Promise.all(servers.map((s) => startDelayProxy(s, delay)));
      options = { rpcServers: proxies.map((p) => p.endpoint), gpuLayers: layers - exitLayer };
    }
    const model = await loadModel(path, options);
    const ctx = await model.createContext({ contextSize: 1024, threads: CLIENT_THREADS });
    const measure = async (opts: GenerateOptions) => {
      ctx.clear();
      proxies.forEach((p) => p.reset());
      const t0 = performance.now();
      const r = await ctx.generate(prompt, opts).result;
      const s = (performance.now() - t0) / 1000;
      return { tps: r.tokens.length / s, trips: proxies.reduce((a, p) => a + p.roundTrips(), 0) / r.tokens.length, perRound: r.speculative?.tokensPerRound };
    };
    for (const [, opts] of modes) await measure(opts); // warm-up: every batch shape once (each new one allocates on the servers)
    // repetitions, the modes interleaved; a ratio compares measurements of the same repetition
    const runs = modes.map(() => [] as Awaited<ReturnType<typeof measure>>[]);
    for (let rep = 0; rep < REPETITIONS; rep++) for (let m = 0; m < modes.length; m++) runs[m].push(await measure(modes[m][1]));
    const link = delay === null ? 'local' : `2 servers, +${delay} ms each way`;
    modes.forEach(([mode], m) => {
      const last = runs[m][runs[m].length - 1]; // greedy: trips and tokens per round repeat exactly
      rows.push({
        model: label,
        link,
        mode,
        tps: median(runs[m].map((r) => r.tps)),
        trips: last.trips,
        perRound: last.perRound,
        speedup: m === 0 ? undefined : median(runs[m].map((r, i) => r.tps / runs[0][i].tps)),
      });
    });
    model.dispose();
    await Promise.all(proxies.map((p) => p.close()));
  }
}

const models = new Set((process.argv[5] ?? 'stories,q4_0,f16').split(','));
try {
  if (models.has('stories')) await run(STORIES, 'stories260K', 3, [1, 2, 4], Number(process.argv[3] ?? 64));
  // 100M: on this CPU a verification of k rows costs nearly k times one row (compute-bound), so
  // short drafts; Q4_0 is what users run, F16 is the generator's own output
  const tokens100m = Number(process.argv[4] ?? 128);
  if (models.has('q4_0')) await run(await benchModel(SHAPE_100M, 'late', 'Q4_0'), '100M Q4_0 (late)', 3, [1, 2, 4], tokens100m);
  if (models.has('f16')) await run(sourceModel(SHAPE_100M, 'late'), '100M F16 (late)', 3, [1, 2, 4], tokens100m);
} finally {
  await Promise.all(servers.map((s) => s.close()));
}

console.log(`medians of ${REPETITIONS} repetitions (self-spec / plain: the median of the ratios within a repetition)\n`);
console.log(
  '| model | link | decoding | tokens/s | round trips / token | tokens / round | self-spec / plain | 0.8 x tokens/round |\n|---|---|---|---|---|---|---|---|',
);
for (const r of rows) {
  const trips = r.link === 'local' ? '-' : r.trips.toFixed(2);
  if (r.speedup === undefined) {
    console.log(`| ${r.model} | ${r.link} | ${r.mode} | ${r.tps.toFixed(1)} | ${trips} | 1 | | |`);
    continue;
  }
  const target = 0.8 * r.perRound!;
  const verdict = r.link.includes('+5 ms') ? (r.speedup >= target ? ' (met)' : ' (missed)') : '';
  console.log(
    `| ${r.model} | ${r.link} | ${r.mode} | ${r.tps.toFixed(1)} | ${trips} | ${r.perRound!.toFixed(2)} | **${r.speedup.toFixed(2)}x**${verdict} | ${target.toFixed(2)} |`,
  );
}
