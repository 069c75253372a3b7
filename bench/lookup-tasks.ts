// The lookup benchmark's tasks, built from held-out documents of the training corpora (never trained
// on), shared by bench/lookup.ts (ours against the peers) and bench/prediction-bound.ts (what a draft
// that is always right reaches on the same prompts):
//   quote: a passage, then its first words again (a model that copies continues the passage);
//   chat:  a transcript: the passage in an early user turn, an answer, a question quoting it;
//   edit:  a passage and "revised:", with a prediction that differs from the passage in 5% of its words;
//   free:  the start of a document, continued freely (lookup should cost nothing).
import type { Model } from 'layerskip';
import { loadCorpus } from './corpus.js';

export const TASK_NAMES = ['quote', 'chat', 'edit', 'free'] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export interface Task {
  name: TaskName;
  prompt: string;
  prediction?: string;
}

/**
 * The start of a held-out document, at most `maxTokens` tokens: whole sentences, then the words of
 * the next one that fit (whole sentences alone left some passages at half the budget, and a quote
 * then had little to copy).
 */
function passage(model: Model, doc: string, maxTokens: number): string {
  const words = doc.replace(/\s+/g, ' ').trim().split(' ');
  let text = '';
  for (const w of words) {
    const next = text ? `${text} ${w}` : w;
    if (model.tokenize(next).length > maxTokens) break;
    text = next;
  }
  return text || doc.slice(0, maxTokens * 2);
}

/** The passage with every 20th word replaced by the word 7 places on (a deterministic 5% edit). */
function edited(text: string): string {
  const words = text.split(' ');
  return words.map((w, i) => (i % 20 === 10 ? words[(i + 7) % words.length] : w)).join(' ');
}

/** `name` as a task name, or an error that lists them. */
export function taskName(name: string): TaskName {
  if (!(TASK_NAMES as readonly string[]).includes(name)) throw new Error(`task ${name}: one of ${TASK_NAMES.join(', ')}`);
  return name as TaskName;
}

/** One task's prompt on each of the held-out documents `0..documents - 1`, built once. */
export function taskPrompts(model: Model, maxPrompt: number, name: TaskName, documents = 15): string[] {
  return Array.from({ length: documents }, (_, d) => lookupTasks(model, maxPrompt, d).find((t) => t.name === name)!.prompt);
}

/** The four tasks on held-out document `docIndex`, for a model that handles prompts of `maxPrompt` tokens. */
export function lookupTasks(model: Model, maxPrompt: number, docIndex: number): Task[] {
  const test = loadCorpus().test;
  const doc = test[docIndex % test.length];
  const budget = maxPrompt - 12;
  const p = passage(model, doc, Math.floor(budget * 0.75));
  const firstWords = p.split(' ').slice(0, 6).join(' ');
  const chatP = passage(model, doc, Math.floor(budget * 0.6));
  const free = passage(model, test[(docIndex + 7) % test.length], 48);
  return [
    { name: 'quote', prompt: `${p}\n\n${firstWords}` },
    {
      name: 'chat',
      prompt: `User: Read this.\n${chatP}\nAssistant: I have read it.\nUser: What comes after "${chatP.split(' ').slice(0, 5).join(' ')}"?\nAssistant: ${chatP.split(' ').slice(0, 5).join(' ')}`,
    },
    { name: 'edit', prompt: `${p}\n\nThe same text, revised:\n`, prediction: edited(p) },
    { name: 'free', prompt: free },
  ];
}
