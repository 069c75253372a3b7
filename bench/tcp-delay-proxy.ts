// A small TCP proxy on 127.0.0.1 that delays every chunk by a fixed time in each direction (a link
// with that one-way latency) and counts round trips: each time the client speaks again after the
// server answered. For benchmarks only; it closes itself after `lifetimeMs` at the latest.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export interface DelayProxy {
  readonly endpoint: string;
  /** Client-to-server turns since the last reset (a request after a response). */
  roundTrips(): number;
  reset(): void;
  /** Changes the delay for chunks forwarded from now on. */
  setDelay(ms: number): void;
  close(): Promise<void>;
}

export async function startDelayProxy(target: { host: string; port: number }, delayMs: number, lifetimeMs = 600_000): Promise<DelayProxy> {
  let trips = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(target);
    // no Nagle: the RPC protocol sends small messages and waits for answers (40 ms delayed ACKs otherwise)
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    let lastFromServer = true; // the first client chunk opens a round trip
    // order is kept: timers with the same delay fire in the order they were set
    const forward = (to: Socket, chunk: Buffer) => (delayMs > 0 ? setTimeout(() => to.writable && to.write(chunk), delayMs) : to.write(chunk));
    client.on('data', (chunk) => {
      if (lastFromServer) trips++;
      lastFromServer = false;
      forward(upstream, chunk);
    });
    upstream.on('data', (chunk) => {
      lastFromServer = true;
      forward(client, chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const timer = setTimeout(() => void close(), lifetimeMs).unref();
  const { port } = server.address() as { port: number };
  async function close(): Promise<void> {
    clearTimeout(timer);
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return {
    endpoint: `127.0.0.1:${port}`,
    roundTrips: () => trips,
    reset: () => {
      trips = 0;
    },
    setDelay: (ms: number) => {
      delayMs = ms;
    },
    close,
  };
}
