// An RPC server (llama.cpp's rpc-server: this machine's backend over TCP) for models split across
// machines. It runs in a process of its own, so it never touches the caller's event loop and
// close() stops it for sure (llama.cpp's server loop has no stop).
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createConnection, createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { builtScript } from '../util/built-script.js';
import { checkInteger, RpcError } from './errors.js';
import { isLoopback, RPC_NO_AUTH_WARNING } from './rpc-endpoint.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

export interface RpcServerOptions {
  /** Address to bind (default 127.0.0.1; any other address gets a warning: the protocol has no authentication). */
  host?: string;
  /** TCP port (default 50052; 0 picks a free one). */
  port?: number;
  /** Compute threads (default: the cores). */
  threads?: number;
  /** Folder where the server caches tensors it receives (llama.cpp's -c). */
  cacheDir?: string;
  /** The ggml device to serve, e.g. "CUDA0" (default: the first GPU, else the CPU). */
  device?: string;
  /** How long to wait for the server to accept connections (default 10 s). */
  startTimeoutMs?: number;
}

export interface RpcServer {
  readonly host: string;
  readonly port: number;
  /** "host:port", what loadModel's rpcServers takes. */
  readonly endpoint: string;
  readonly pid: number;
  /** Stops the server (and frees what clients stored on it). Idempotent. */
  close(): Promise<void>;
}

const SERVER_PROCESS = builtScript('./rpc-server-process.js', import.meta.url) ?? fileURLToPath(new URL('./rpc-server-process.js', import.meta.url));

/** A TCP port nothing listens on now (the system's pick). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const probe = createServer();
  probe.listen(0, host);
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts an RPC server in a child process and resolves once it accepts connections. */
const RPC_SERVER_KEYS = {
  host: true,
  port: true,
  threads: true,
  cacheDir: true,
  device: true,
  startTimeoutMs: true,
} as const satisfies KeysOf<RpcServerOptions>;

export async function startRpcServer(options: RpcServerOptions = {}): Promise<RpcServer> {
  checkOptionKeys('startRpcServer options', options, RPC_SERVER_KEYS);
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw new TypeError('host must be a non-empty string');
  const threads = checkInteger('threads', options.threads ?? availableParallelism(), 1, 512);
  const startTimeoutMs = checkInteger('startTimeoutMs', options.startTimeoutMs ?? 10_000, 1, 600_000);
  let port = checkInteger('port', options.port ?? 50052, 0, 65535);
  if (options.cacheDir !== undefined && typeof options.cacheDir !== 'string') throw new TypeError('cacheDir must be a string');
  if (options.device !== undefined && (typeof options.device !== 'string' || options.device.length === 0))
    throw new TypeError('device must be a device name such as "CUDA0"');
  if (!isLoopback(host)) process.emitWarning(`RPC server on ${host}: ${RPC_NO_AUTH_WARNING}`, 'LayerskipRpcWarning');
  if (port === 0) port = await freePort(host);
  // something already answering there would pass for our server below
  if (await accepts(host, port)) throw new RpcError(`the RPC server did not start: ${host}:${port} is in use`, 'ERR_RPC_SERVER');

  const args = [host, String(port), String(threads), options.cacheDir ?? '', options.device ?? ''];
  const child: ChildProcess = fork(SERVER_PROCESS, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  let exited: number | string | null = null;
  const exit = once(child, 'exit').then(([code, signal]) => (exited = (code as number | null) ?? (signal as string)));

  const t0 = Date.now();
  while (!(await accepts(host, port))) {
    if (exited !== null) throw new RpcError(`the RPC server on ${host}:${port} did not start (${exited}): ${stderr.trim() || 'no output'}`, 'ERR_RPC_SERVER');
    if (Date.now() - t0 > startTimeoutMs) {
      child.kill('SIGKILL');
      throw new RpcError(`the RPC server on ${host}:${port} did not accept connections within ${startTimeoutMs} ms`, 'ERR_RPC_SERVER');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  child.unref(); // a forgotten server does not keep the caller alive
  (child as unknown as { channel?: { unref(): void } }).channel?.unref();
  return {
    host,
    port,
    endpoint: `${host}:${port}`,
    pid: child.pid!,
    async close() {
      child.ref(); // keep the caller alive until the server has gone
      if (exited === null) child.kill('SIGTERM');
      await exit;
    },
  };
}
