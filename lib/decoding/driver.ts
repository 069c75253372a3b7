// The round skeleton every generation runs after its prompt: take the prompt's token, then rounds
// until the session ends (a stop, the token limit, an abort) or the context is full. What a round
// does is a strategy's: in turn (self-speculative.ts: a plain step or run, a free draft, an early-exit
// draft, or both fused) or overlapped (pipelined.ts: the next round drafted while this one is
// verified). The skeleton owns what must be the same for all of them: when to stop, how much room a
// round has, the round count and the closing statistics.
import { finishStats } from './accept.js';
import type { DecodeSession } from './session.js';
import type { SpeculativeStats } from './types.js';

/**
 * Most drafts in one round, whatever their sources (a free draft continued by early exit, or the
 * reverse), and the upper bound of every draft-length option: a round's verification is then at most 65 rows, which llama.cpp computes row by row with
 * the kernels of a one-token decode (patches/0015), so that a verification row equals the plain step
 * it replaces bit for bit.
 */
export const MAX_ROUND_DRAFTS = 64;

/** Where a generation stands between rounds. */
export interface Cursor {
  /** The position of `last`: the newest token, not yet in the KV cache. */
  p: number;
  last: number;
}

export interface RoundStrategy {
  /**
   * One round from `at`. `room` is how many drafts fit (the round emits up to room + 1 tokens, and
   * writes up to room + 1 cells). Returns where the next round starts, or null when the session
   * ended in this round.
   */
  round(at: Cursor, room: number): Promise<Cursor | null>;
  /** A round threw: true when the generation should end as it stands instead (the strategy handled it). */
  recover?(error: unknown, at: Cursor): boolean;
}

/** Runs `strategy` from `start`: `last` is the token picked from the prompt's decode, `p` its position. */
export async function driveRounds(
  session: DecodeSession,
  stats: SpeculativeStats,
  contextSize: number,
  start: Cursor,
  strategy: RoundStrategy,
): Promise<SpeculativeStats> {
  if (!session.accept(start.last)) return finishStats(stats, session.tokens.length, session.tokens.length);
  stats.corrections++; // the prompt's token is the full model's own
  let at = start;
  try {
    while (!session.done) {
      session.check();
      if (at.p >= contextSize) {
        session.stop('contextFull');
        break;
      }
      const room = Math.min(session.maxTokens - session.tokens.length - 1, contextSize - 1 - at.p, MAX_ROUND_DRAFTS);
      stats.rounds++;
      const next = await strategy.round(at, room);
      if (!next) break;
      at = next;
    }
  } catch (e) {
    if (!strategy.recover?.(e, at)) throw e;
  }
  return finishStats(stats, session.tokens.length, 0);
}
