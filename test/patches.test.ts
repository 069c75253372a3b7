// patches/ is a git format-patch series: consecutive numbers, the same headers on every file, a
// message that carries the README's explanation of the patch, and a README section for each.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'patches');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.patch'))
  .sort();
const readme = readFileSync(join(dir, 'README.md'), 'utf8');

describe('the patch series', () => {
  it('is numbered 0001..N without gaps', () => {
    expect(files.length).toBeGreaterThan(10);
    expect(files.map((f) => f.slice(0, 4))).toEqual(files.map((_, i) => String(i + 1).padStart(4, '0')));
  });

  it('has format-patch headers, the same on every file, and [PATCH i/N] subjects', () => {
    for (const [i, f] of files.entries()) {
      const text = readFileSync(join(dir, f), 'utf8');
      const lines = text.split('\n');
      expect(lines[0], f).toBe('From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001');
      expect(lines[1], f).toBe('From: layerskip <layerskip@users.noreply.github.com>');
      expect(lines[2], f).toBe('Date: Thu, 1 Jan 2026 00:00:00 +0000');
      const n = String(files.length).padStart(2, '0');
      expect(lines[3], f).toMatch(new RegExp(`^Subject: \\[PATCH ${String(i + 1).padStart(2, '0')}/${n}\\] layerskip: `));
      expect(text, f).toContain('\ndiff --git a/');
    }
  });

  it("each patch has a README section, and its message carries that section's reasons", () => {
    for (const f of files) {
      const section = readme.match(new RegExp(`^## ${f.replace('.', '\\.')} — (.+)$`, 'm'));
      expect(section, `patches/README.md has no section for ${f}`).not.toBeNull();
      const message = readFileSync(join(dir, f), 'utf8').split('\n---\n')[0].replace(/\s+/g, ' ');
      expect(message).toContain(`From patches/README.md (${f})`);
      // the first row of the section's table (its "why" cell), or its first paragraph, is in the
      // message (compared as words: the message is the README flattened to plain text)
      const words = (t: string) => t.match(/[A-Za-z0-9_]+/g)?.join(' ') ?? '';
      const body = readme.slice(readme.indexOf(section![0]) + section![0].length);
      const first = body.split('\n').find((l) => l.startsWith('| `') || (l.trim() && !l.startsWith('|')))!;
      const cell = first.startsWith('|') ? (first.split('|').filter((c) => c.trim())[2] ?? first) : first;
      const firstWords = words(cell).split(' ').slice(0, 6).join(' ');
      expect(firstWords.split(' ').length).toBe(6);
      expect(words(message), f).toContain(firstWords);
    }
  });
});
