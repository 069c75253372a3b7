// llama.cpp's own chat renderer (llama_chat_apply_template): a fixed list of known templates
// recognized by their markers, no Jinja. The library renders with Jinja; this is the reference
// its tests compare with, exported for users who want to compare too.
import { native } from '../native/binding.js';
import { checkChatMessages, type ChatMessage } from './chat-template.js';

/** Renders with llama.cpp's built-in renderer; throws (code ERR_UNSUPPORTED_TEMPLATE) for a template it does not know. */
export function applyBuiltinChatTemplate(template: string, messages: readonly ChatMessage[], addAssistant = true): string {
  if (typeof template !== 'string' || template.length === 0) throw new TypeError('template must be a non-empty string');
  return native().chatApplyBuiltinTemplate(template, checkChatMessages(messages), addAssistant === true);
}
