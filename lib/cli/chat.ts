// `layerskip chat`: an interactive conversation on a model's chat template. Each line is a user
// turn; the answer streams to stdout. Ctrl-C stops the current answer (the conversation goes on),
// Ctrl-D (end of input) ends the session.
import { createInterface } from 'node:readline';
import { ChatSession } from '../runtime/chat-session.js';
import { PLAIN_CHAT_TEMPLATE } from '../runtime/chat-template.js';
import type { GenerateOptions } from '../runtime/context.js';
import { DEMO_MODEL_PATH } from '../util/demo-model.js';
import { loadModel } from '../runtime/model.js';
import { intFlag, parse, readFlagFile, UsageError } from './args.js';
import {
  GENERATION_FLAGS,
  checkExitLayerFlag,
  constraintFromFlags,
  contextFromFlags,
  speculationFromFlags,
  freeDraftsFromFlags,
  samplingFromFlags,
} from './generation-flags.js';

export const chatUsage = `  layerskip chat [-m MODEL] [--system TEXT] [--template FILE] [-n N] [--temp T] [--top-k K] [--top-p P]
                 [--min-p P] [--repeat-penalty R] [--seed S] [--threads T] [--ctx N] [--lookup on|off] [--prediction FILE]
                 [--grammar FILE | --json-schema FILE]
                 [--exit-layer E [--draft D] [--draft-head FILE]]  (lookup drafts come from every
                  earlier turn too; default on)
                 (one user turn per line; Ctrl-C stops the current answer, Ctrl-D ends; a model
                  without a chat template gets the plain "User: / Assistant:" fallback)
`;

export async function chatCommand(argv: string[]): Promise<void> {
  const { values } = parse('chat', argv, { ...GENERATION_FLAGS, system: { type: 'string' }, template: { type: 'string' } });
  const options = { ...samplingFromFlags(values, 256), ...freeDraftsFromFlags('chat', values), ...constraintFromFlags('chat', values) };
  const { exitLayer, draftHead } = speculationFromFlags('chat', values);
  if (exitLayer !== undefined) {
    options.selfSpeculative = { exitLayer, draftTokens: intFlag('draft', values.draft, 1), draftHead };
  } else if (values.draft !== undefined) {
    throw new UsageError('chat: --draft needs --exit-layer (or a --draft-head file)');
  }
  let template = values.template === undefined ? undefined : readFlagFile('chat', 'template', values.template);
  if (!values.model) process.stderr.write(`layerskip: no -m MODEL given; using the demo model ${DEMO_MODEL_PATH} (stories260K)\n`);
  const model = await loadModel(values.model ?? DEMO_MODEL_PATH);
  try {
    checkExitLayerFlag('chat', exitLayer, model.layerCount);
    if (!template && !model.info.chatTemplate) {
      process.stderr.write('layerskip: the model has no chat template; using the plain "User: / Assistant:" transcript\n');
      template = PLAIN_CHAT_TEMPLATE;
    }
    const ctx = await model.createContext(contextFromFlags(values));
    const chat = new ChatSession(ctx, { systemPrompt: values.system, template });
    await converse(chat, options);
  } finally {
    model.dispose();
  }
}

/** The read-answer loop: lines queue while an answer streams; an interrupt stops only that answer. */
async function converse(chat: ChatSession, options: GenerateOptions): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
  let answering: AbortController | null = null;
  // a terminal delivers Ctrl-C to readline; a pipe (tests, scripts) gets the signal itself
  const interrupt = () => {
    if (answering) answering.abort();
    else {
      process.stderr.write('\n(Ctrl-D ends the chat)\n');
      rl.prompt(); // the line typed so far is dropped: a fresh prompt, as a shell gives
    }
  };
  rl.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);
  rl.setPrompt('> ');
  rl.prompt();
  try {
    for await (const line of rl) {
      if (line.trim().length > 0) {
        answering = new AbortController();
        const turn = chat.prompt(line, { ...options, signal: answering.signal });
        try {
          for await (const chunk of turn) process.stdout.write(chunk.text);
          const r = await turn.result;
          process.stdout.write('\n');
          const s = r.speculative;
          const lk = s?.sources.lookup;
          const spec = s
            ? `, ${s.tokensPerRound.toFixed(2)} tokens/round` +
              (s.exitLayer === null ? '' : `, acceptance ${(s.acceptanceRate * 100).toFixed(0)}%`) +
              (lk && lk.drafted > 0 ? `, lookup accepted ${lk.accepted}/${lk.drafted}` : '')
            : '';
          process.stderr.write(
            `[${r.timings.generatedTokens} tokens, ${r.timings.tokensPerSecond.toFixed(0)} tokens/s${spec}, prompt ${r.timings.promptTokens} (${r.timings.reusedPromptTokens} reused)]\n`,
          );
        } catch (e) {
          if ((e as Error).name !== 'AbortError') throw e;
          process.stdout.write('\n[answer stopped]\n');
        } finally {
          answering = null;
        }
      }
      rl.prompt();
    }
  } finally {
    process.off('SIGINT', interrupt);
    rl.close();
  }
}
