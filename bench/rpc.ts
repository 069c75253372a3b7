// Self-speculative decoding over llama.cpp's RPC backend, on loopback: a model split across this
// process (layers [0, E) and the LM head: drafts never leave) and 2 RPC servers (layers [E, N)),
// behind a delaying proxy of 0, 1 and 5 ms each way, against the model loaded locally. Reports
// tokens/s and network round trips per token, plain and self-speculative, in one run.
//   node bench/run.mjs rpc [tokensStories=64] [tokens100m=32]
import { loadModel, startRpcServer, type GenerateOptions } from 'layerskip';
import { SHAPE_100M, STORIES, sourceModel } from './models.js';
import { startDelayProxy, type DelayProxy } from './tcp-delay-proxy.js';

const THREADS = 1; // each RPC server
const CLIENT_THREADS = 1; // this process (the drafts run here)
const servers = await Promise.all([startRpcServer({ port: 0, threads: THREADS }), startRpcServer({ port: 0, threads: THREADS })]);

interface Row { model: string; link: string; mode: string; tps: number; trips: number; perRound?: number }
const rows: Row[] = [];

async function run(path: string, label: string, exitLayer: number, draftTokens: number, tokens: number): Promise<void> {
  const modes: [string, GenerateOptions][] = [
    ['plain', { maxTokens: tokens }],
    [`self-speculative E=${exitLayer} d=${draftTokens}`, { maxTokens: tokens, selfSpeculative: { exitLayer, draftTokens } }],
  ];
  const prompt = [1, 300, 301, 302];
  for (const delay of [null, 0, 1, 5] as (number | null)[]) {
    let proxies: DelayProxy[] = [];
    let options = {};
    if (delay !== null) {
      proxies = await Promise.all(servers.map((s) => startDelayProxy(s, delay)));
      const info = await loadModel(path, { validate: true });
      const n = info.layerCount;
      info.dispose();
      options = { rpcServers: proxies.map((p) => p.endpoint), gpuLayers: n - exitLayer };
    }
    const model = await loadModel(path, options);
    const ctx = await model.createContext({ contextSize: 1024, threads: CLIENT_THREADS });
    for (const [mode, opts] of modes) {
      await ctx.generate(prompt, opts).result; // warm-up: every batch shape once (each new one allocates on the servers)
      ctx.clear();
      proxies.forEach((p) => p.reset());
      const t0 = performance.now();
      const r = await ctx.generate(prompt, opts).result;
      const s = (performance.now() - t0) / 1000;
      const trips = proxies.reduce((a, p) => a + p.roundTrips(), 0);
      rows.push({ model: label, link: delay === null ? 'local' : `2 servers, +${delay} ms each way`, mode, tps: r.tokens.length / s, trips: trips / r.tokens.length, perRound: r.speculative?.tokensPerRound });
    }
    model.dispose();
    await Promise.all(proxies.map((p) => p.close()));
  }
}

try {
  await run(STORIES, 'stories260K', 3, 4, Number(process.argv[2] ?? 64));
  // 100M: each draft step costs ~0.4 of a full step locally (3 of 12 layers plus the 32k-row LM head),
  // so short drafts: a round's local drafting must stay under the round trips it saves
  await run(sourceModel(SHAPE_100M, 'late'), '100M F16 (late)', 3, 2, Number(process.argv[3] ?? 32));
  await run(sourceModel(SHAPE_100M, 'late'), '100M F16 (late)', 3, 4, Number(process.argv[3] ?? 32));
} finally {
  await Promise.all(servers.map((s) => s.close()));
}

console.log('| model | link | decoding | tokens/s | round trips / token | tokens / round | self-spec / plain | 0.8 x tokens/round |\n|---|---|---|---|---|---|---|---|');
for (let i = 0; i < rows.length; i += 2) {
  const [p, s] = [rows[i], rows[i + 1]];
  const speedup = s.tps / p.tps;
  console.log(`| ${p.model} | ${p.link} | ${p.mode} | ${p.tps.toFixed(1)} | ${p.link === 'local' ? '-' : p.trips.toFixed(2)} | 1 | | |`);
  console.log(`| ${s.model} | ${s.link} | ${s.mode} | ${s.tps.toFixed(1)} | ${s.link === 'local' ? '-' : s.trips.toFixed(2)} | ${s.perRound!.toFixed(2)} | **${speedup.toFixed(2)}x** | ${(0.8 * s.perRound!).toFixed(2)} |`);
}
