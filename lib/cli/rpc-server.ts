// `layerskip rpc-server`: llama.cpp's RPC server in this process, until SIGINT or SIGTERM.
import { availableParallelism } from 'node:os';
import { loadNative } from '../native/binding.js';
import { isLoopback, RPC_NO_AUTH_WARNING } from '../native/rpc-endpoint.js';
import { intFlag, parse } from './args.js';

export const rpcServerUsage = `  layerskip rpc-server [--host 127.0.0.1] [--port 50052] [--threads N] [--cache DIR] [--device NAME]
                 (this machine's backend for models split across machines: loadModel's rpcServers,
                  generate --rpc; no authentication: keep it on 127.0.0.1 behind an SSH tunnel)
`;

export async function rpcServerCommand(argv: string[]): Promise<void> {
  const { values } = parse('rpc-server', argv, {
    host: { type: 'string' },
    port: { type: 'string', short: 'p' },
    threads: { type: 'string', short: 't' },
    cache: { type: 'string' },
    device: { type: 'string' },
  });
  const host = values.host ?? '127.0.0.1';
  const port = intFlag('port', values.port, 1, 65535) ?? 50052;
  const threads = intFlag('threads', values.threads, 1, 512) ?? availableParallelism();
  if (!isLoopback(host)) process.stderr.write(`layerskip rpc-server: WARNING: listening on ${host}. ${RPC_NO_AUTH_WARNING}\n`);
  process.stderr.write(`layerskip rpc-server: serving ${host}:${port} with ${threads} threads (Ctrl-C stops it)\n`);
  // the server loop holds this thread; the default SIGINT / SIGTERM actions end the process
  const native = await loadNative();
  native.rpcServe(host, port, threads, values.cache, values.device);
}
