// RPC endpoints ("host:port") and the one warning the protocol needs: it has no authentication.
import { isIP } from 'node:net';

export interface RpcEndpoint {
  host: string;
  port: number;
}

/** Parses "host:port" (IPv4 or a host name; llama.cpp's RPC transport is IPv4). */
export function parseRpcEndpoint(text: unknown, what = 'RPC endpoint'): RpcEndpoint {
  if (typeof text !== 'string') throw new TypeError(`${what} must be a string "host:port", got ${String(text)}`);
  const m = /^([^:\s]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new RangeError(`${what} must be "host:port" with a port in [1, 65535], got ${JSON.stringify(text)}`);
  return { host: m[1], port };
}

/** Loopback addresses: the only ones where an unauthenticated server is safe by default. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.'));
}

export const RPC_NO_AUTH_WARNING =
  "llama.cpp's RPC protocol has no authentication or encryption: anyone who can reach this port can run " +
  "computations and read or write the model's data. Bind to 127.0.0.1 and use an SSH tunnel, or a trusted LAN only.";
