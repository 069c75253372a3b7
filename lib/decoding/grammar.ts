// A generation's grammar (GBNF, or a JSON schema turned into GBNF by llama.cpp's converter): the
// committed state, advanced by every token the session emits, and forks of it that follow a
// round's drafts. The sampler masks each row with the state at that row, so the full model's
// distribution under the grammar is the target p of plain and speculative decoding alike.
import { type NativeGrammar, type NativeModel, native } from '../native/binding.js';
import type { RowMask } from './sampling.js';

export class GrammarState implements RowMask {
  constructor(private readonly native: NativeGrammar) {}

  /** Sets the forbidden tokens of a logits row to -Infinity, in place. */
  mask(row: Float32Array): void {
    this.native.mask(row);
  }

  allows(token: number): boolean {
    return this.native.allows(token);
  }

  accept(token: number): void {
    this.native.accept(token);
  }

  /** An independent copy (a round's drafts advance it; the committed state stays). */
  fork(): GrammarState {
    return new GrammarState(this.native.fork());
  }

  dispose(): void {
    this.native.dispose();
  }
}

/** How many of `tokens` the grammar allows one after the other from `state` (which is left as it was). */
export function allowedPrefix(state: GrammarState, tokens: readonly number[]): number {
  const f = state.fork();
  try {
    for (let j = 0; j < tokens.length; j++) {
      if (!f.allows(tokens[j])) return j;
      f.accept(tokens[j]);
    }
    return tokens.length;
  } finally {
    f.dispose();
  }
}

/**
 * GBNF for a JSON schema (an object or its JSON text), by llama.cpp's own converter
 * (common/json-schema-to-grammar.cpp, compiled into the addon). A RangeError names what it does not support.
 */
export function jsonSchemaToGrammar(schema: object | string): string {
  const text = typeof schema === 'string' ? schema : JSON.stringify(schema);
  return native().jsonSchemaToGrammar(text);
}

/**
 * The start state of generate()'s `grammar` or `jsonSchema` (a SyntaxError or RangeError now, not
 * once the generation runs); null without either. The caller owns it.
 */
export function resolveGrammar(options: { grammar?: string; jsonSchema?: object | string }, model: NativeModel): NativeGrammar | null {
  const { grammar, jsonSchema } = options;
  if (grammar === undefined && jsonSchema === undefined) return null;
  if (grammar !== undefined && jsonSchema !== undefined) throw new TypeError('generate: give grammar or jsonSchema, not both');
  if (grammar !== undefined && (typeof grammar !== 'string' || grammar.trim() === '')) throw new TypeError('grammar must be a non-empty GBNF string');
  if (jsonSchema !== undefined && typeof jsonSchema !== 'string' && (jsonSchema === null || typeof jsonSchema !== 'object')) {
    throw new TypeError('jsonSchema must be a JSON schema object or its JSON text');
  }
  const text = grammar ?? jsonSchemaToGrammar(jsonSchema!);
  return native().createGrammar(model, text, 'root');
}
