// After tsc: make the CLI executable and add the CommonJS entry that explains the ESM-only package.
import { chmodSync, writeFileSync } from 'node:fs';
chmodSync('dist/cli.js', 0o755);
writeFileSync('dist/require-error.cjs',
  "throw new Error(\"layerskip is an ES module: use `import { loadModel } from 'layerskip'` (or `await import('layerskip')` from CommonJS)\");\n");
