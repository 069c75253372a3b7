// Leaving a for-await loop over a generation (break, return, a throw in its body) or calling
// generation.abort() stops it: the result rejects with an AbortError, the context is free within
// milliseconds, and no more than the running round's tokens are decoded after it.
import { describe, expect, it } from 'vitest';
import { ChatSession, PLAIN_CHAT_TEMPLATE } from '../lib/index.js';
import { modelFixture, STORIES } from './helpers.js';

const PROMPT = 'Once upon a time';

describe('generation control', () => {
  const f = modelFixture(() => STORIES, { contextSize: 2048, threads: 1 });

  for (const [label, selfSpeculative] of [
    ['plain', undefined],
    ['self-speculative', { exitLayer: 3, draftTokens: 4 }],
  ] as const) {
    it(`break after the first chunk stops a ${label} generation and frees the context`, async () => {
      const gen = f.ctx.generate(PROMPT, { maxTokens: 2000, selfSpeculative });
      let seen = 0;
      let t0 = 0;
      for await (const chunk of gen) {
        seen += chunk.tokens.length;
        t0 = performance.now();
        break;
      }
      await expect(gen.result).rejects.toMatchObject({ name: 'AbortError' });
      // free again: a new generation starts at once instead of throwing BusyError
      const next = f.ctx.generate(PROMPT, { maxTokens: 3 });
      expect(performance.now() - t0).toBeLessThan(50);
      expect((await next.result).tokens).toHaveLength(3);
      expect(seen).toBeGreaterThan(0);
    });
  }

  it('decodes no more than the running round after a break', async () => {
    const gen = f.ctx.generate(PROMPT, { maxTokens: 2000, selfSpeculative: { exitLayer: 3, draftTokens: 4 } });
    const promptTokens = f.model.tokenize(PROMPT).length;
    let seen = 0;
    for await (const chunk of gen) {
      seen += chunk.tokens.length;
      break;
    }
    await expect(gen.result).rejects.toMatchObject({ name: 'AbortError' });
    // the KV cache holds the prompt, the delivered tokens and at most one round beyond them
    expect(f.ctx.state().nextPosition - promptTokens - seen).toBeLessThanOrEqual(4 + 1);
  });

  it('a throw in the loop body and return from a function stop it too', async () => {
    const thrown = f.ctx.generate(PROMPT, { maxTokens: 2000 });
    await expect(
      (async () => {
        for await (const _ of thrown) throw new Error('the consumer failed');
      })(),
    ).rejects.toThrow('the consumer failed');
    await expect(thrown.result).rejects.toMatchObject({ name: 'AbortError' });

    const returned = f.ctx.generate(PROMPT, { maxTokens: 2000 });
    const first = await (async () => {
      for await (const chunk of returned) return chunk.text;
      return null;
    })();
    expect(first).not.toBeNull();
    await expect(returned.result).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('generation.abort() rejects with its reason; after the end it does nothing', async () => {
    const gen = f.ctx.generate(PROMPT, { maxTokens: 2000 });
    const reason = new Error('enough');
    gen.abort(reason);
    await expect(gen.result).rejects.toBe(reason);

    const done = f.ctx.generate(PROMPT, { maxTokens: 5 });
    const r = await done.result;
    done.abort();
    await expect(done.result).resolves.toBe(r);
    // iterating a finished generation to its end aborts nothing either
    const texts: string[] = [];
    for await (const c of done) texts.push(c.text);
    expect(texts.join('')).toBe(r.text);
  });

  it('a chat turn left early is aborted and leaves the history as it was', async () => {
    const chat = new ChatSession(f.ctx, { template: PLAIN_CHAT_TEMPLATE });
    const turn = chat.prompt('Hello', { maxTokens: 500 });
    for await (const _ of turn) break;
    await expect(turn.result).rejects.toMatchObject({ name: 'AbortError' });
    expect(chat.messages).toEqual([]);
    expect((await chat.prompt('Hello', { maxTokens: 4 }).result).tokens.length).toBeGreaterThan(0);
  });
});
