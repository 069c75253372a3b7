// The README's quick start runs as written: its JavaScript block, saved inside this package (so that
// `import ... from 'layerskip'` resolves to the built package by name) and run with plain Node.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

it("the README's quick start runs as written in plain JavaScript", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('## API'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  expect(code, 'a ```js block in the quick start').toBeDefined();
  const dir = join(root, '.cache', 'readme');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'quick-start.mjs');
  writeFileSync(file, code!);
  try {
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    // the demo model's greedy story, twice (plain, then self-speculative), and the statistics
    expect(r.stdout.split(', there was a little girl named Lily').length - 1).toBeGreaterThanOrEqual(2);
    expect(r.stdout).toMatch(/acceptanceRate/);
  } finally {
    rmSync(file, { force: true });
  }
});
