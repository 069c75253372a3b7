// The published declarations (dist/**/*.d.ts, built by `npm run build` with stripInternal) hold no
// member that the sources mark @internal: the native handle, generateOn and the test-only options
// stay out of the API a user sees.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

/** The names of the members declared right after an @internal comment in `src`. */
function internalMembers(src: string): string[] {
  const names: string[] = [];
  for (const m of src.matchAll(/@internal\b(?:(?!\*\/)[\s\S])*\*\/\s*(?:(?:static|readonly|private|public|async|get|set)\s+)*([A-Za-z_$][\w$]*)\s*[(:?<]/g)) {
    names.push(m[1]);
  }
  return names;
}

describe('published declarations', () => {
  const dist = join(root, 'dist');

  it('finds @internal members in the sources (the scan works)', () => {
    const all = tsFiles(join(root, 'lib')).flatMap((f) => internalMembers(readFileSync(f, 'utf8')));
    expect(all).toContain('generateOn');
    expect(all).toContain('handle');
  });

  it.skipIf(!existsSync(join(dist, 'index.d.ts')))('no .d.ts declares a member the sources mark @internal', () => {
    const leaks: string[] = [];
    for (const file of tsFiles(join(root, 'lib'))) {
      const names = internalMembers(readFileSync(file, 'utf8'));
      if (names.length === 0) continue;
      const dts = join(dist, relative(join(root, 'lib'), file)).replace(/\.ts$/, '.d.ts');
      expect(existsSync(dts), dts).toBe(true);
      const text = readFileSync(dts, 'utf8');
      for (const name of names.filter((n) => n !== 'constructor')) {
        // (a class whose constructor is @internal still shows `private constructor()`: not callable)
        if (new RegExp(`^\\s*(?:(?:static|readonly|private|public|get|set)\\s+)*${name.replace('$', '\\$')}\\s*[(:?<]`, 'm').test(text)) {
          leaks.push(`${relative(root, dts)}: ${name}`);
        }
      }
    }
    expect(leaks).toEqual([]);
  });
});
