// The direction of imports inside lib/: lower layers never import higher ones. The decoding loops
// sit below the runtime objects (context, model, generation) that drive them; the model-file
// layer (gguf) below everything that loads models; the analysis toolkit's mathematics below its
// reports; the PRNGs (util/) below all. Each rule names the files it holds for and what they must
// not import; a violation names the file and the import.
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

interface Rule {
  what: string;
  files: (f: string) => boolean;
  forbidden: (target: string) => boolean;
}

const under = (dir: string) => (p: string) => p.startsWith(`${dir}/`);
const oneOf =
  (...names: string[]) =>
  (p: string) =>
    names.includes(p);
const any =
  (...preds: ((p: string) => boolean)[]) =>
  (p: string) =>
    preds.some((f) => f(p));
const RUNTIME = oneOf('context.ts', 'model.ts', 'generation.ts', 'index.ts');
const ABOVE_RUNTIME = any(under('cli'), under('chat'), under('training'), under('reports'), oneOf('layer-analysis.ts', 'sweep.ts'), under('rpc'));

const RULES: Rule[] = [
  { what: 'util/ (the PRNGs) imports nothing else of lib/', files: under('util'), forbidden: (t) => !t.startsWith('util/') },
  // a draft head's file and installation sit below the runtime; fitting one (fit.ts) uses a Context
  {
    what: 'the decoding loops do not import the runtime objects that drive them, nor anything above',
    files: under('decoding'),
    forbidden: any(RUNTIME, ABOVE_RUNTIME, under('analysis'), oneOf('draft-head/fit.ts')),
  },
  {
    what: "a draft head's file, base weights and installation do not import the runtime",
    files: oneOf('draft-head/draft-head.ts', 'draft-head/install.ts', 'draft-head/base-weights.ts'),
    forbidden: any(RUNTIME, ABOVE_RUNTIME, under('decoding'), oneOf('draft-head/fit.ts')),
  },
  {
    what: 'the sampler does not import the analysis toolkit (its PRNG lives in util/)',
    files: oneOf('sampling.ts'),
    forbidden: any(under('analysis'), RUNTIME, ABOVE_RUNTIME),
  },
  {
    what: 'the GGUF layer does not import what loads or runs models',
    files: under('gguf'),
    forbidden: any(RUNTIME, ABOVE_RUNTIME, under('decoding'), under('draft-head'), under('analysis')),
  },
  {
    what: "the analysis toolkit's mathematics does not import reports or the runtime (its index may re-export charts)",
    files: (f) => under('analysis')(f) && f !== 'analysis/index.ts',
    forbidden: any(under('reports'), RUNTIME, ABOVE_RUNTIME, under('decoding')),
  },
  { what: 'the native contract imports nothing of lib/', files: oneOf('native-contract.ts'), forbidden: () => true },
  { what: 'nothing outside the CLI imports the CLI', files: (f) => !under('cli')(f), forbidden: under('cli') },
];

describe('import layering', () => {
  const graph = importGraph();

  it('finds the imports (the graph is not empty)', () => {
    expect(graph.get('decoding/self-speculative.ts')).toContain('decoding/plain.ts');
    expect(graph.get('context.ts')).toContain('decoding/self-speculative.ts');
  });

  for (const rule of RULES) {
    it(rule.what, () => {
      const violations: string[] = [];
      for (const [file, targets] of graph) {
        if (!rule.files(file)) continue;
        for (const t of targets) if (rule.forbidden(t)) violations.push(`${file} imports ${t}`);
      }
      expect(violations).toEqual([]);
    });
  }
});
