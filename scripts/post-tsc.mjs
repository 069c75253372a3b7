// After tsc: make the CLI executable and add the CommonJS entry that explains the ESM-only package.
// Arguments go on to the native build, so `npm run build -- --cuda [--cuda-arch 90]` rebuilds the
// addon too (plain `npm run build` compiles only the TypeScript).
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
chmodSync('dist/cli/index.js', 0o755);
writeFileSync(
  'dist/require-error.cjs',
  "throw new Error(\"layerskip is an ES module: use `import { loadModel } from 'layerskip'` (or `await import('layerskip')` from CommonJS)\");\n",
);
const nativeArgs = process.argv.slice(2);
if (nativeArgs.length > 0) {
  const r = spawnSync(process.execPath, ['scripts/build-native.mjs', ...nativeArgs], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
