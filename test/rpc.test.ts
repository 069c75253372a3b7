// llama.cpp's RPC backend: a model split across this process and RPC servers (started by the test on
// 127.0.0.1 at free ports) gives the same tokens as the model loaded locally, self-speculative
// decoding over RPC equals plain decoding over RPC, and a server that goes away mid-generation
// rejects that generation instead of taking the process down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, RpcError, startRpcServer, type RpcServer } from '../lib/index.js';
import { freePort } from '../lib/native/rpc-server.js';
import { STORIES, untilFirstToken } from './helpers.js';
import { startDelayProxy } from '../bench/tcp-delay-proxy.js';

const PROMPT = 'Once upon a time';
let servers: RpcServer[] = [];
let reference: number[] = [];

beforeAll(async () => {
  servers = await Promise.all([startRpcServer({ port: 0, threads: 1 }), startRpcServer({ port: 0, threads: 1 })]);
  const local = await loadModel(STORIES);
  const ctx = await local.createContext({ contextSize: 256, threads: 1 });
  reference = (await ctx.generate(PROMPT, { maxTokens: 40 }).result).tokens;
  local.dispose();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

describe('RPC servers', () => {
  it('a model split across the local CPU and two servers gives the local tokens; drafts stay local', async () => {
    const model = await loadModel(STORIES, { rpcServers: servers.map((s) => s.endpoint), gpuLayers: 2 });
    try {
      const d = model.devices();
      expect(d.layers.slice(0, 3).every((x) => x.startsWith('CPU'))).toBe(true); // exit layer 3: drafts never leave
      expect(d.layers[3]).toContain(servers[0].endpoint);
      expect(d.layers[4]).toContain(servers[1].endpoint);
      expect(d.output).toBe('CPU');
      const ctx = await model.createContext({ contextSize: 256, threads: 1 });
      const plain = await ctx.generate(PROMPT, { maxTokens: 40 }).result;
      expect(plain.tokens).toEqual(reference);
      const spec = await ctx.generate(PROMPT, { maxTokens: 40, selfSpeculative: { exitLayer: 3, draftTokens: 3 } }).result;
      expect(spec.tokens).toEqual(plain.tokens);
      // drafting the next round while this one is verified over the network
      const overlapped = await ctx.generate(PROMPT, { maxTokens: 40, selfSpeculative: { exitLayer: 3, draftTokens: 1, overlap: true } }).result;
      expect(overlapped.tokens).toEqual(plain.tokens);
      expect(overlapped.speculative!.pipelinedRounds).toBeGreaterThanOrEqual(0);
    } finally {
      model.dispose();
    }
  });

  it('round trips: none for a draft, one per server for a verification and for each plain token, also after self-speculative decoding', async () => {
    const proxies = await Promise.all(servers.map((s) => startDelayProxy(s, 0))); // counts round trips
    const model = await loadModel(STORIES, { rpcServers: proxies.map((p) => p.endpoint), gpuLayers: 2 });
    const trips = () => proxies.map((p) => p.roundTrips());
    const reset = () => proxies.forEach((p) => p.reset());
    try {
      const ctx = await model.createContext({ contextSize: 256, threads: 1 });
      const spec = { maxTokens: 24, selfSpeculative: { exitLayer: 3, draftTokens: 3 } };
      await ctx.generate(PROMPT, { maxTokens: 24 }).result; // warm: every graph shape allocates once
      await ctx.generate(PROMPT, spec).result;
      // after drafts llama.cpp extracts the exit layer's input from every decode; it must not sit on
      // a server (patch 0006), or each plain token costs one more round trip
      reset();
      const plain = await ctx.generate(PROMPT, { maxTokens: 24 }).result;
      expect(trips()).toEqual([plain.tokens.length, plain.tokens.length]);

      ctx.clear();
      await ctx.decodeLayers({ tokens: [1, 300, 301] });
      reset();
      await ctx.decodeLayers({ tokens: [302], layers: [0, 3] }); // warm: the drafts' graph
      await ctx.decodeLayers({ layers: [3, 5], outputs: 'all' });
      reset();
      await ctx.decodeLayers({ tokens: [303, 304], layers: [0, 3], outputs: 'all' });
      expect(trips()).toEqual([0, 0]); // drafts never leave this process
      await ctx.decodeLayers({ layers: [3, 5], outputs: 'all' });
      expect(trips()).toEqual([1, 1]); // one verification of both drafts
    } finally {
      model.dispose();
      await Promise.all(proxies.map((p) => p.close()));
    }
  });

  it("a local-only decode in one context does not wait for another context's decode on the servers (patch 0007)", async () => {
    const proxies = await Promise.all(servers.map((s) => startDelayProxy(s, 0)));
    const model = await loadModel(STORIES, { rpcServers: proxies.map((p) => p.endpoint), gpuLayers: 2 });
    try {
      const remote = await model.createContext({ contextSize: 64, threads: 1 });
      const local = await model.createContext({ contextSize: 64, threads: 1 });
      // warm: each context's graph shapes allocate once (that does talk to the servers)
      await remote.decodeLayers({ tokens: [1, 300] });
      await local.decodeLayers({ tokens: [1, 300], layers: [0, 3] });
      local.clear();
      proxies.forEach((p) => p.setDelay(100)); // a slow link: 100 ms each way
      const t0 = performance.now();
      const full = remote.decodeLayers({ tokens: [301] }).then(() => performance.now() - t0); // 2 servers: >= 400 ms
      await new Promise((resolve) => setTimeout(resolve, 50)); // its messages are queued and on the wire
      const t1 = performance.now();
      const draft = local.decodeLayers({ tokens: [1, 300], layers: [0, 3] }).then(() => performance.now() - t1);
      const [fullMs, draftMs] = await Promise.all([full, draft]);
      expect(fullMs).toBeGreaterThan(400);
      expect(draftMs).toBeLessThan(100); // before the patch it waited for the other context's messages (~300 ms)
    } finally {
      model.dispose();
      await Promise.all(proxies.map((p) => p.close()));
    }
  });

  it('bad endpoints and a refused connection are clear errors', async () => {
    await expect(loadModel(STORIES, { rpcServers: ['nohost'] })).rejects.toThrow(/rpcServers\[0\] must be "host:port"/);
    await expect(loadModel(STORIES, { rpcServers: ['127.0.0.1:99999'] })).rejects.toThrow(/port in \[1, 65535\]/);
    await expect(loadModel(STORIES, { rpcServers: [] })).rejects.toThrow(/non-empty array/);
    await expect(loadModel(STORIES, { tensorSplit: [1] })).rejects.toThrow(/need rpcServers/);
    const port = await freePort(); // nothing listens there
    await expect(loadModel(STORIES, { rpcServers: [`127.0.0.1:${port}`] })).rejects.toThrow(new RegExp(`RPC server 127\\.0\\.0\\.1:${port}: cannot connect`));
    await expect(startRpcServer({ port: servers[0].port, threads: 1 })).rejects.toThrow(/did not start: .* is in use/); // the port is taken
  });

  it('a server killed mid-generation rejects that generation within the timeout; the process goes on', async () => {
    const doomed = await startRpcServer({ port: 0, threads: 1 });
    const model = await loadModel(STORIES, { rpcServers: [doomed.endpoint], gpuLayers: 2, rpcTimeoutMs: 2000 });
    try {
      const ctx = await model.createContext({ contextSize: 512, threads: 1 });
      const gen = ctx.generate(PROMPT, { maxTokens: 400 });
      await untilFirstToken(gen); // it is running
      const t0 = performance.now();
      await doomed.close();
      const lost = await gen.result.catch((e: unknown) => e);
      expect(lost).toBeInstanceOf(RpcError); // the addon's ERR_RPC, as the class the TypeScript side throws
      expect(lost).toMatchObject({ code: 'ERR_RPC' });
      expect(performance.now() - t0).toBeLessThan(2000);
      await expect(ctx.generate(PROMPT, { maxTokens: 3 }).result).rejects.toMatchObject({ code: 'ERR_RPC' }); // and stays failed
    } finally {
      model.dispose();
    }
    const local = await loadModel(STORIES);
    const ctx = await local.createContext({ contextSize: 256, threads: 1 });
    expect((await ctx.generate(PROMPT, { maxTokens: 40 }).result).tokens).toEqual(reference);
    local.dispose();
  });
});

describe('startRpcServer options', () => {
  it('an unknown device or bad option is a clear error', async () => {
    await expect(startRpcServer({ port: 0, threads: 1, device: 'CUDA7' })).rejects.toThrow(/no device CUDA7 \(devices: CPU/);
    await expect(startRpcServer({ port: 70000 })).rejects.toThrow(/port must be an integer in \[0, 65535\]/);
    await expect(startRpcServer({ threads: 0 })).rejects.toThrow(/threads must be an integer/);
    await expect(startRpcServer({ device: '' })).rejects.toThrow(/device must be a device name/);
  });
});
