// Chat: templates rendered with Jinja against llama.cpp's built-in renderer (an independent
// implementation) for five published templates, ChatSession turns against plain generation, and
// the bad-input cases.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iterateTensorBytes, readGgufInfo, writeGguf, type GgufMetadataValue } from '../lib/gguf/index.js';
import { ChatSession, ChatTemplateError, PLAIN_CHAT_TEMPLATE, applyBuiltinChatTemplate, loadModel, type ChatMessage, type Model } from '../lib/index.js';
import { CHAT_TEMPLATES, type ChatTemplateFixture } from './fixtures/chat-templates.js';
import { STORIES } from './helpers.js';

const files: string[] = [];
afterAll(() => files.forEach((f) => rmSync(f, { force: true })));

/** The demo model with a chat template and its markers as control tokens (in place of rare tokens, so shapes stay). */
function withChatTemplate(fixture: ChatTemplateFixture): string {
  const info = readGgufInfo(STORIES);
  const md = new Map(info.metadata);
  const tokens = [...(md.get('tokenizer.ggml.tokens')!.value as string[])];
  const types = Int32Array.from(md.get('tokenizer.ggml.token_type')!.value as ArrayLike<number>);
  fixture.markers.forEach((m, i) => {
    tokens[tokens.length - 1 - i] = m;
    types[tokens.length - 1 - i] = 3; // CONTROL
  });
  md.set('tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens } as GgufMetadataValue);
  md.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types } as GgufMetadataValue);
  md.set('tokenizer.chat_template', { type: 'string', value: fixture.template });
  const out = join(tmpdir(), `layerskip-chat-${fixture.family.replace(/\W+/g, '-')}-${process.pid}.gguf`);
  writeGguf(
    out,
    md,
    info.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: () => iterateTensorBytes(STORIES, t) })),
  );
  files.push(out);
  return out;
}

// llama.cpp's own test conversation (tests/test-chat-template.cpp), with and without its system message
const WITH_SYSTEM: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant' },
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi there' },
  { role: 'user', content: 'Who are you' },
  { role: 'assistant', content: '   I am an assistant   ' },
  { role: 'user', content: 'Another question' },
];
const WITHOUT_SYSTEM = WITH_SYSTEM.slice(1);

describe("chat templates: Jinja against llama.cpp's built-in renderer", () => {
  it.each(CHAT_TEMPLATES)('$family ($source)', async (fixture) => {
    const model = await loadModel(withChatTemplate(fixture));
    try {
      expect(model.info.chatTemplate).toBe(fixture.template);
      for (const messages of [WITHOUT_SYSTEM, WITH_SYSTEM, WITHOUT_SYSTEM.slice(0, 1)]) {
        const builtin = applyBuiltinChatTemplate(fixture.template, messages, true);
        if (messages[0].role === 'system' && fixture.rejectsSystem) {
          // the published template refuses a system message; llama.cpp's renderer folds it into the first turn
          expect(() => model.applyChatTemplate(messages)).toThrow(ChatTemplateError);
          expect(() => model.applyChatTemplate(messages)).toThrow(fixture.rejectsSystem);
          continue;
        }
        expect(model.applyChatTemplate(messages)).toBe(builtin);
      }
      // without the generation prompt the rendering ends with the last message
      const closed = model.applyChatTemplate(WITHOUT_SYSTEM.slice(0, 3), { addGenerationPrompt: false });
      expect(model.applyChatTemplate(WITHOUT_SYSTEM.slice(0, 3)).startsWith(closed.replace(/<\/s>$/, ''))).toBe(true);
      // markers are single control tokens of the vocabulary
      for (const m of fixture.markers) expect(model.tokenize(m, { addBos: false, special: true })).toHaveLength(1);
    } finally {
      model.dispose();
    }
  });
});

describe('ChatSession', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(withChatTemplate(CHAT_TEMPLATES[1])); // ChatML
  });
  afterAll(() => model?.dispose());

  it('turns equal plain generation from the rendered history, reuse the KV prefix, and keep the history', async () => {
    const ctx = await model.createContext({ contextSize: 1024, threads: 1 });
    const chat = new ChatSession(ctx, { systemPrompt: 'You tell short stories.' });
    const turns = ['Once upon a time', 'What happened next?'];
    const reference = await model.createContext({ contextSize: 1024, threads: 1 });
    let previousPrompt = 0;
    for (const [i, text] of turns.entries()) {
      const before = chat.messages;
      const tokens = model.tokenize(model.applyChatTemplate([...before, { role: 'user', content: text }]), { special: true });
      reference.clear();
      const plain = await reference.generate(tokens, { maxTokens: 24 }).result;
      const turn = await chat.prompt(text, { maxTokens: 24, selfSpeculative: i === 1 ? { exitLayer: 3, draftTokens: 3 } : undefined }).result;
      expect(turn.tokens).toEqual(plain.tokens); // lossless, self-speculative or not
      expect(turn.message).toEqual({ role: 'assistant', content: plain.text.trim() });
      if (i > 0) expect(turn.timings.reusedPromptTokens).toBeGreaterThanOrEqual(previousPrompt); // earlier turns stay in the KV cache
      previousPrompt = turn.timings.promptTokens;
    }
    expect(chat.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
    ctx.dispose();
    reference.dispose();
  });

  it('an aborted turn leaves the history as it was; the next turn works', async () => {
    const ctx = await model.createContext({ contextSize: 1024, threads: 1 });
    const chat = new ChatSession(ctx);
    const ac = new AbortController();
    const turn = chat.prompt('Once upon a time', { maxTokens: 200, signal: ac.signal });
    for await (const _ of turn) {
      ac.abort();
      break;
    }
    await expect(turn.result).rejects.toMatchObject({ name: 'AbortError' });
    expect(chat.messages).toEqual([]);
    expect((await chat.prompt('Hello', { maxTokens: 4 }).result).tokens.length).toBeGreaterThan(0);
    expect(chat.messages).toHaveLength(2);
    ctx.dispose();
  });

  it('bad input: message shapes, unknown roles, no template', async () => {
    const ctx = await model.createContext({ contextSize: 256, threads: 1 });
    expect(() => model.applyChatTemplate('hi' as never)).toThrow(/messages must be an array/);
    expect(() => model.applyChatTemplate([{ role: 'wizard', content: 'x' }] as never)).toThrow(
      /role must be one of "system", "user", "assistant", "tool", got "wizard"/,
    );
    expect(() => model.applyChatTemplate([{ role: 'user', content: 5 }] as never)).toThrow(/content must be a string/);
    expect(() => model.applyChatTemplate([null] as never)).toThrow(/must be an object/);
    expect(() => new ChatSession(ctx, { history: [{ role: 'bot', content: '' }] as never })).toThrow(/history\[0\]\.role/);
    expect(() => model.applyChatTemplate([{ role: 'user', content: 'x' }], { template: '{% for %}' })).toThrow(ChatTemplateError);
    const plain = await loadModel(STORIES);
    const plainCtx = await plain.createContext({ contextSize: 256, threads: 1 });
    expect(() => plain.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/has no chat template/);
    expect(() => new ChatSession(plainCtx)).toThrow(ChatTemplateError);
    // the documented fallback
    expect(plain.applyChatTemplate([{ role: 'user', content: 'Hi' }], { template: PLAIN_CHAT_TEMPLATE })).toBe('User: Hi\nAssistant:');
    const chat = new ChatSession(plainCtx, { template: PLAIN_CHAT_TEMPLATE });
    expect((await chat.prompt('Tell me a story', { maxTokens: 8 }).result).tokens.length).toBeGreaterThan(0);
    plain.dispose();
    ctx.dispose();
  });

  it('stopTokens end a generation like end-of-generation tokens', async () => {
    const ctx = await model.createContext({ contextSize: 256, threads: 1 });
    const free = await ctx.generate('Once upon a time', { maxTokens: 12 }).result;
    const stopAt = free.tokens[5];
    const first = free.tokens.indexOf(stopAt);
    for (const selfSpeculative of [undefined, { exitLayer: 3, draftTokens: 4 }]) {
      const r = await ctx.generate('Once upon a time', { maxTokens: 12, stopTokens: [stopAt], selfSpeculative }).result;
      expect(r.tokens).toEqual(free.tokens.slice(0, first));
      expect(r.stopReason).toBe('eos');
    }
    expect(() => ctx.generate('x', { stopTokens: [1e9] })).toThrow(/stopTokens/);
    ctx.dispose();
  });
});
