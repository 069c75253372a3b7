// Chat templates: the GGUF's own `tokenizer.chat_template` (Jinja), rendered with
// @huggingface/jinja, the engine made for these templates, the way transformers' apply_chat_template
// renders them: `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, `tools`.
import { Template } from '@huggingface/jinja';

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';
export const CHAT_ROLES: readonly ChatRole[] = ['system', 'user', 'assistant', 'tool'];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ChatTemplateOptions {
  /** End with the text that opens the assistant's turn (default true). */
  addGenerationPrompt?: boolean;
  /** Tool definitions, passed to the template as `tools` (templates that know tools render them). */
  tools?: readonly unknown[];
  /** A Jinja template to use instead of the model's own. */
  template?: string;
}

/** The model has no chat template, or its template failed on these messages. */
export class ChatTemplateError extends Error {
  readonly code = 'ERR_CHAT_TEMPLATE';
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

/**
 * The documented fallback for models without a chat template (the demo model): a plain transcript,
 * "User: ...\nAssistant: ...". A chat over it should stop at "\nUser:" (ChatSession does).
 */
export const PLAIN_CHAT_TEMPLATE =
  "{% for message in messages %}{% if message.role == 'system' %}{{ message.content }}\n\n{% elif message.role == 'user' %}User: {{ message.content }}\n{% else %}Assistant: {{ message.content }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";

/** Checks messages' shape: an array of { role, content } with a known role and string content. */
export function checkChatMessages(messages: unknown, what = 'messages'): ChatMessage[] {
  if (!Array.isArray(messages)) throw new TypeError(`${what} must be an array of { role, content }`);
  return messages.map((m, i) => {
    if (typeof m !== 'object' || m === null) throw new TypeError(`${what}[${i}] must be an object { role, content }`);
    const { role, content } = m as Record<string, unknown>;
    if (!CHAT_ROLES.includes(role as ChatRole)) {
      throw new RangeError(
        `${what}[${i}].role must be one of ${CHAT_ROLES.map((r) => JSON.stringify(r)).join(', ')}, got ${typeof role === 'string' ? JSON.stringify(role) : String(role)}`,
      );
    }
    if (typeof content !== 'string') throw new TypeError(`${what}[${i}].content must be a string, got ${typeof content}`);
    return { role: role as ChatRole, content };
  });
}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`the chat template does not parse: ${(e as Error).message}`);
    }
    if (compiled.size > 32) compiled.clear(); // a handful of templates per process; bound it anyway
    compiled.set(source, t);
  }
  return t;
}

export interface RenderChatOptions {
  addGenerationPrompt: boolean;
  bosToken: string;
  eosToken: string;
  tools?: readonly unknown[];
}

/** Renders `messages` with a Jinja chat template. Template errors (raise_exception) become ChatTemplateError. */
export function renderChatTemplate(source: string, messages: readonly ChatMessage[], options: RenderChatOptions): string {
  const template = compile(source);
  try {
    return template.render({
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: options.addGenerationPrompt,
      bos_token: options.bosToken,
      eos_token: options.eosToken,
      ...(options.tools ? { tools: options.tools } : {}),
    });
  } catch (e) {
    throw new ChatTemplateError(`the chat template rejected the messages: ${(e as Error).message}`);
  }
}

/** Markers that end a turn in common templates; a chat stops at whichever of them its template uses. */
export const END_OF_TURN_MARKERS = ['<|eot_id|>', '<|im_end|>', '<end_of_turn>', '<|end|>', '<|END_OF_TURN_TOKEN|>', '<|end_of_turn|>', '<|endoftext|>'];
