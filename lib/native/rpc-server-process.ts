// The RPC server's own process (started by startRpcServer): llama.cpp's server loop on the main
// thread, which returns only when the server cannot start.
import { loadNative } from './binding.js';

const [host, port, threads, cacheDir, device] = process.argv.slice(2);
const native = await loadNative();
try {
  native.rpcServe(host, Number(port), Number(threads), cacheDir || undefined, device || undefined);
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
}
