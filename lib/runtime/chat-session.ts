// ChatSession: a conversation on one context. Each turn renders the whole history with the chat
// template and generates from it; the context's prompt-prefix reuse keeps the earlier turns' KV
// cells, so a turn decodes only what is new. Generation stops at the template's end of turn.
// When the conversation outgrows the context, the oldest turns leave the history (the system
// message stays) before the next turn is rendered: the turn then runs on the trimmed history,
// exactly as a session started from it would.
import type { GenerateOptions } from './context.js';
import type { Model } from './model.js';
import { Generation, type GenerationResult } from './generation.js';
import { END_OF_TURN_MARKERS, PLAIN_CHAT_TEMPLATE, checkChatMessages, type ChatMessage } from './chat-template.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';
import { checkEnum } from '../native/errors.js';

export interface ChatSessionOptions {
  /** A system message that opens the conversation. */
  systemPrompt?: string;
  /** Messages the conversation starts from (after the system prompt). */
  history?: readonly ChatMessage[];
  /** A Jinja chat template instead of the model's own; models without one need it (PLAIN_CHAT_TEMPLATE). */
  template?: string;
  /**
   * What a turn does when the rendered conversation and the room kept for the answer (its
   * maxTokens, at most half the context) do not fit the context: 'dropOldestTurns' (default)
   * removes the oldest user/assistant exchanges, keeping the system message, until it fits;
   * 'none' lets the turn fail with a ContextFullError.
   */
  contextShift?: 'dropOldestTurns' | 'none';
}

/** Where a chat generates: a context (its sequence 0) or one of its sequences. */
export interface ChatTarget {
  readonly model: Model;
  /** The context's size in tokens (the room a conversation has). */
  readonly contextSize: number;
  generate(prompt: string | readonly number[], options?: GenerateOptions): Generation;
}

export interface ChatTurnResult extends GenerationResult {
  /** The assistant's message as it joined the history. */
  message: ChatMessage;
  /** Messages removed from the start of the history (after the system message) to make room for this turn. */
  droppedMessages: number;
}

export class ChatSession {
  private readonly history: ChatMessage[] = [];
  private readonly template: string | undefined;
  private readonly endOfTurn: { tokens: number[]; strings: string[] };
  private busy = false;
  private readonly contextShift: 'dropOldestTurns' | 'none';

  constructor(
    readonly context: ChatTarget,
    options: ChatSessionOptions = {},
  ) {
    checkOptionKeys('ChatSession options', options, {
      systemPrompt: true,
      history: true,
      template: true,
      contextShift: true,
    } as const satisfies KeysOf<ChatSessionOptions>);
    this.contextShift = checkEnum('contextShift', options.contextShift, ['dropOldestTurns', 'none'] as const) ?? 'dropOldestTurns';
    if (options.systemPrompt !== undefined) {
      if (typeof options.systemPrompt !== 'string') throw new TypeError('systemPrompt must be a string');
      this.history.push({ role: 'system', content: options.systemPrompt });
    }
    if (options.history !== undefined) this.history.push(...checkChatMessages(options.history, 'history'));
    this.template = options.template;
    const source = this.template ?? context.model.info.chatTemplate ?? '';
    this.endOfTurn = endOfTurn(context, source);
    context.model.applyChatTemplate(this.history, { template: this.template }); // fails now, not at the first turn
  }

  /** The conversation so far (a copy). */
  get messages(): ChatMessage[] {
    return this.history.map((m) => ({ ...m }));
  }

  /**
   * The assistant's answer to `text`: streams like context.generate() and takes its options
   * (maxTokens, sampling, signal, selfSpeculative, ...). The turn joins the history when it ends;
   * an aborted or failed turn leaves the history as it was.
   */
  prompt(text: string, options: GenerateOptions = {}): Generation & { result: Promise<ChatTurnResult> } {
    if (typeof text !== 'string') throw new TypeError('prompt: text must be a string');
    if (this.busy) throw new Error('prompt: the previous turn of this chat is still running');
    const user: ChatMessage = { role: 'user', content: text };
    const { tokens, dropped } = this.fit(user, options.maxTokens);
    const inner = this.context.generate(tokens, {
      ...options,
      stop: [...(options.stop ?? []), ...this.endOfTurn.strings],
      stopTokens: [...(options.stopTokens ?? []), ...this.endOfTurn.tokens],
    });
    this.busy = true;
    return new Generation(async (emit, stopped) => {
      const stop = () => inner.abort(stopped.reason);
      stopped.addEventListener('abort', stop, { once: true });
      try {
        for await (const chunk of inner) emit(chunk);
        const result = await inner.result;
        const message: ChatMessage = { role: 'assistant', content: result.text.trim() };
        this.history.splice(this.firstTurn(), dropped); // the turns this one was rendered without
        this.history.push(user, message);
        return { ...result, message, droppedMessages: dropped };
      } finally {
        stopped.removeEventListener('abort', stop);
        this.busy = false;
      }
    }) as Generation & { result: Promise<ChatTurnResult> };
  }

  /** Where the droppable turns start: after a leading system message. */
  private firstTurn(): number {
    return this.history[0]?.role === 'system' ? 1 : 0;
  }

  /**
   * The tokens of the history plus `user`, without the oldest turns when they do not fit with room
   * for the answer; `dropped` counts the messages left out (whole user/assistant exchanges).
   */
  private fit(user: ChatMessage, maxTokens: number | undefined): { tokens: number[]; dropped: number } {
    const size = this.context.contextSize;
    const room = Math.min(maxTokens ?? 256, Math.floor(size / 2));
    const first = this.firstTurn();
    const render = (dropped: number) => {
      const messages = [...this.history.slice(0, first), ...this.history.slice(first + dropped), user];
      return this.context.model.tokenize(this.context.model.applyChatTemplate(messages, { template: this.template }), { special: true });
    };
    let dropped = 0;
    let tokens = render(0);
    if (this.contextShift === 'none') return { tokens, dropped };
    const turns = this.history.length - first;
    while (tokens.length + room > size && dropped < turns) {
      // a whole exchange: a user message and the answers up to the next user message
      dropped++;
      while (dropped < turns && this.history[first + dropped].role !== 'user') dropped++;
      tokens = render(dropped);
    }
    return { tokens, dropped };
  }
}

/** The template's end of turn: marker tokens (special tokens of the vocabulary) and plain strings. */
function endOfTurn(context: ChatTarget, source: string): { tokens: number[]; strings: string[] } {
  const tokens: number[] = [];
  const strings: string[] = [];
  const model = context.model;
  for (const marker of END_OF_TURN_MARKERS) {
    if (!source.includes(marker)) continue;
    const ids = model.tokenize(marker, { addBos: false, special: true });
    if (ids.length === 1) tokens.push(ids[0]);
    else strings.push(marker);
  }
  if (source === PLAIN_CHAT_TEMPLATE) strings.push('\nUser:');
  return { tokens, strings };
}
