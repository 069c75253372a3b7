// ChatSession's context shift: a 20-turn conversation in a 256-token context keeps answering. After
// every shift, the turn's greedy answer equals (a) the answer of a fresh session started from the
// trimmed history on a fresh context (the independent reference: recomputing from scratch) and
// (b) the self-speculative answer of a session run in step with it. The system message survives.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatSession, type Context, ContextFullError, loadModel, type Model, PLAIN_CHAT_TEMPLATE } from '../lib/index.js';
import { STORIES } from './helpers.js';

const SIZE = 256;
const QUESTIONS = ['Tell me about the dog.', 'What did the girl find in the park?', 'Why was the cat sad?', 'Where did they go next?', 'Who was Lily?'];

describe('ChatSession context shift', () => {
  let model: Model;
  let plain: Context;
  let spec: Context;
  let fresh: Context;

  beforeAll(async () => {
    model = await loadModel(STORIES);
    plain = await model.createContext({ contextSize: SIZE, threads: 1 });
    spec = await model.createContext({ contextSize: SIZE, threads: 1 });
    fresh = await model.createContext({ contextSize: SIZE, threads: 1 });
  });
  afterAll(() => model?.dispose());

  it('20 turns in a 256-token context: every turn answers, equal to recomputing from the trimmed history', async () => {
    const options = { template: PLAIN_CHAT_TEMPLATE, systemPrompt: 'You tell short stories.' };
    const a = new ChatSession(plain, options);
    const b = new ChatSession(spec, options);
    let shifts = 0;
    for (let turn = 0; turn < 20; turn++) {
      const q = QUESTIONS[turn % QUESTIONS.length];
      const before = a.messages;
      const r = await a.prompt(q, { maxTokens: 40 }).result;
      const s = await b.prompt(q, { maxTokens: 40, selfSpeculative: { exitLayer: 3, draftTokens: 3 } }).result;
      expect(s.text, `turn ${turn}: self-speculative`).toBe(r.text);
      expect(s.droppedMessages).toBe(r.droppedMessages);
      expect(r.tokens.length, `turn ${turn} answered`).toBeGreaterThan(0);
      if (r.droppedMessages > 0) {
        shifts++;
        // the reference: a fresh session on a fresh context from the history this turn kept
        const kept = before.slice(1 + r.droppedMessages);
        fresh.clear();
        const ref = await new ChatSession(fresh, { ...options, history: kept }).prompt(q, { maxTokens: 40 }).result;
        expect(r.text, `turn ${turn}: after dropping ${r.droppedMessages} messages`).toBe(ref.text);
        expect(ref.droppedMessages).toBe(0);
        // and no more was dropped than needed: with one more exchange kept, the prompt and the
        // room for the answer (maxTokens) would not fit
        const oneMore = [before[0], ...before.slice(1 + r.droppedMessages - 2), { role: 'user' as const, content: q }];
        const tokens = model.tokenize(model.applyChatTemplate(oneMore, { template: PLAIN_CHAT_TEMPLATE }), { special: true });
        expect(tokens.length + 40).toBeGreaterThan(SIZE);
      }
      const history = a.messages;
      expect(history[0]).toEqual({ role: 'system', content: options.systemPrompt });
      expect(history.at(-2)).toEqual({ role: 'user', content: q });
      expect(history.length % 2).toBe(1); // the system message and whole exchanges
    }
    expect(shifts).toBeGreaterThan(3);
    expect(a.messages.length).toBeLessThan(1 + 2 * 20);
  });

  it("contextShift: 'none' lets the turn that does not fit fail, with the history kept", async () => {
    plain.clear();
    const chat = new ChatSession(plain, { template: PLAIN_CHAT_TEMPLATE, contextShift: 'none' });
    let failed: unknown;
    for (let turn = 0; turn < 20 && !failed; turn++) {
      const before = chat.messages.length;
      try {
        // a prompt longer than the context throws at once, as context.generate() does
        await chat.prompt(QUESTIONS[turn % QUESTIONS.length], { maxTokens: 40 }).result;
      } catch (e) {
        failed = e;
      }
      if (failed) expect(chat.messages.length).toBe(before);
    }
    expect(failed).toBeInstanceOf(ContextFullError);
  });

  it('rejects an unknown contextShift', () => {
    expect(() => new ChatSession(plain, { template: PLAIN_CHAT_TEMPLATE, contextShift: 'drop' as never })).toThrow(/contextShift/);
  });
});
