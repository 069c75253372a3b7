// Self-speculative decoding over llama.cpp's RPC backend, on loopback: a model split across this
// process (layers [0, E) and the LM head: drafts never leave) and 2 RPC servers (layers [E, N)),
// behind a delaying proxy of 0, 1 and 5 ms each way, against the model loaded locally. Reports
// tokens/s and network round trips per token, plain and self-speculative, in one run.
//   node bench/run.mjs rpc [tokensStories=64] [tokens100m=64]
import { loadModel, startRpcServer, type GenerateOptions } from 'layerskip';
import { benchModel, SHAPE_100M, STORIES, sourceModel } from './models.js';
import { startDelayProxy, type DelayProxy } from './tcp-delay-proxy.js';

// 1 thread per process: the client and both servers share this machine's 2 cores, but only one of
// them computes at a time (a single sequence is a pipeline), so each gets a core as on its own host
const THREADS = 1; // each RPC server
const CLIENT_THREADS = 1; // this process (the drafts run here)
const servers = await Promise.all([startRpcServer({ port: 0, threads: THREADS }), startRpcServer({ port: 0, threads: THREADS })]);

interface Row { model: string; link: string; mode: string; tps: number; trips: number; perRound?: number; plainTps?: number }
const rows: Row[] = [];

async function run(path: string, label: string, exitLayer: number, draftLengths: number[], tokens: number): Promise<void> {
  const modes: [string, GenerateOptions][] = [
    ['plain', { maxTokens: tokens }],
    ...draftLengths.map((d): [string, GenerateOptions] => [`self-speculative E=${exitLayer} d=${d}`, { maxTokens: tokens, selfSpeculative: { exitLayer, draftTokens: d } }]),
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
    let plainTps = 0;
    for (const [mode, opts] of modes) {
      await ctx.generate(prompt, opts).result; // warm-up: every batch shape once (each new one allocates on the servers)
      ctx.clear();
      proxies.forEach((p) => p.reset());
      const t0 = performance.now();
      const r = await ctx.generate(prompt, opts).result;
      const s = (performance.now() - t0) / 1000;
      ctx.clear();
      const trips = proxies.reduce((a, p) => a + p.roundTrips(), 0);
      const tps = r.tokens.length / s;
      if (!r.speculative) plainTps = tps;
      rows.push({
        model: label, link: delay === null ? 'local' : `2 servers, +${delay} ms each way`, mode, tps, trips: trips / r.tokens.length,
        perRound: r.speculative?.tokensPerRound, plainTps: r.speculative ? plainTps : undefined,
      });
    }
    model.dispose();
    await Promise.all(proxies.map((p) => p.close()));
  }
}

try {
  const tokens100m = Number(process.argv[3] ?? 64);
  await run(STORIES, 'stories260K', 3, [4], Number(process.argv[2] ?? 64));
  // 100M: on this CPU a verification of k rows costs nearly k times one row (compute-bound), so
  // short drafts; the quantized copy is what users run (F16 is the generator's own output)
  await run(sourceModel(SHAPE_100M, 'late'), '100M F16 (late)', 3, [1, 2, 4], tokens100m);
  await run(await benchModel(SHAPE_100M, 'late', 'Q4_0'), '100M Q4_0 (late)', 3, [1, 2, 4], tokens100m);
} finally {
  await Promise.all(servers.map((s) => s.close()));
}

console.log('| model | link | decoding | tokens/s | round trips / token | tokens / round | self-spec / plain | 0.8 x tokens/round |\n|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const trips = r.link === 'local' ? '-' : r.trips.toFixed(2);
  if (r.perRound === undefined) {
    console.log(`| ${r.model} | ${r.link} | ${r.mode} | ${r.tps.toFixed(1)} | ${trips} | 1 | | |`);
    continue;
  }
  const speedup = r.tps / r.plainTps!;
  const target = 0.8 * r.perRound;
  console.log(`| ${r.model} | ${r.link} | ${r.mode} | ${r.tps.toFixed(1)} | ${trips} | ${r.perRound.toFixed(2)} | **${speedup.toFixed(2)}x** ${speedup >= target ? '(met)' : ''} | ${target.toFixed(2)} |`);
}
