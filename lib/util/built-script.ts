// Scripts that run in a thread or process of their own (the validation worker, the RPC server's
// process) must be JavaScript: the compiled file beside the calling module, or, when the caller
// runs from the TypeScript sources in lib/ (the tests), the same file in dist/.
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const sourceRoot = join(dirname(fileURLToPath(import.meta.url)), '..'); // lib/ or dist/

/** The compiled `name` (relative to the module at `moduleUrl`), or undefined when none is built. */
export function builtScript(name: string, moduleUrl: string): string | undefined {
  const beside = fileURLToPath(new URL(name, moduleUrl));
  const inDist = join(sourceRoot, '..', 'dist', relative(sourceRoot, beside));
  return [beside, inDist].find((p) => existsSync(p));
}
