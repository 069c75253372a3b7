// The direction of imports inside lib/: each folder is a layer, and a file imports only from its own
// layer and the layers below it:
//   util <- native <- gguf, analysis <- draft-head <- model-file <- decoding <- runtime <- tools <- cli
// (the package's entry point, lib/index.ts, sits on top and re-exports from every layer). A wrong-way
// import fails here with the file and the import named; `npm test` runs this file.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const lib = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** lib-relative paths (e.g. 'decoding/plain.ts') of the lib files each lib file imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of tsFiles(lib)) {
    const src = readFileSync(file, 'utf8');
    const targets: string[] = [];
    for (const m of src.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      targets.push(relative(lib, normalize(join(dirname(file), m[1]))).replace(/\.js$/, '.ts'));
    }
    graph.set(relative(lib, file), targets);
  }
  return graph;
}

// the layers from the bottom up; folders on one line are peers that do not import each other
const LAYERS: string[][] = [['util'], ['native'], ['gguf', 'analysis'], ['draft-head'], ['model-file'], ['decoding'], ['runtime'], ['tools'], ['cli']];
const TOP = 'index.ts'; // the package's entry point

function folderOf(file: string): string {
  return file.includes('/') ? file.slice(0, file.indexOf('/')) : file;
}
function levelOf(file: string): number {
  const folder = folderOf(file);
  if (file === TOP) return LAYERS.length;
  const level = LAYERS.findIndex((peers) => peers.includes(folder));
  if (level < 0) throw new Error(`${file} is in no layer: add its folder to LAYERS`);
  return level;
}

/** The imports of `graph` that run downward-only rules backwards: a file importing a higher layer or a peer folder. */
function wrongWayImports(graph: Map<string, string[]>): string[] {
  const violations: string[] = [];
  for (const [file, targets] of graph) {
    for (const t of targets) {
      const [from, to] = [levelOf(file), levelOf(t)];
      if (to > from || (to === from && folderOf(t) !== folderOf(file))) {
        violations.push(`${file} (${folderOf(file)}) imports ${t} (${folderOf(t)})`);
      }
    }
  }
  return violations;
}

describe('import layering', () => {
  const graph = importGraph();

  it('finds the imports (the graph is not empty)', () => {
    expect(graph.get('decoding/self-speculative.ts')).toContain('decoding/plain.ts');
    expect(graph.get('runtime/context.ts')).toContain('decoding/self-speculative.ts');
  });

  it('puts every lib/ file in a layer, and only the entry point at the root', () => {
    const loose = [...graph.keys()].filter((f) => !f.includes('/') && f !== TOP);
    expect(loose).toEqual([]);
    for (const f of graph.keys()) expect(() => levelOf(f)).not.toThrow();
  });

  it('no file imports a higher layer or a peer folder', () => {
    expect(wrongWayImports(graph)).toEqual([]);
  });

  it('the rule catches a wrong-way import (decoding importing the runtime, gguf importing analysis)', () => {
    const mutated = new Map(graph);
    mutated.set('decoding/plain.ts', [...(graph.get('decoding/plain.ts') ?? []), 'runtime/context.ts']);
    mutated.set('gguf/reader.ts', ['analysis/pca.ts']);
    expect(wrongWayImports(mutated)).toEqual([
      'decoding/plain.ts (decoding) imports runtime/context.ts (runtime)',
      'gguf/reader.ts (gguf) imports analysis/pca.ts (analysis)',
    ]);
  });

  it('the native contract imports nothing of lib/', () => {
    expect(graph.get('native/contract.ts')).toEqual([]);
  });
});
