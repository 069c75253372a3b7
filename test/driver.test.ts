// The round skeleton (lib/decoding/driver.ts) that the in-turn and overlapped strategies share:
// the room it gives a round, where it stops, and what a strategy's recover hook may end.
import { describe, expect, it } from 'vitest';
import { newStats } from '../lib/decoding/accept.js';
import { type Cursor, driveRounds, MAX_ROUND_DRAFTS, type RoundStrategy } from '../lib/decoding/driver.js';
import type { DecodeSession } from '../lib/decoding/session.js';

/** The part of a DecodeSession the skeleton uses: token 0 is end of generation. */
function stubSession(maxTokens: number) {
  const s = {
    maxTokens,
    tokens: [] as number[],
    stopReason: null as string | null,
    get done() {
      return s.stopReason !== null;
    },
    check() {},
    stop(reason: string) {
      s.stopReason ??= reason;
    },
    accept(token: number) {
      if (token === 0) {
        s.stopReason = 'eos';
        return false;
      }
      s.tokens.push(token);
      if (s.tokens.length >= maxTokens) s.stopReason = 'maxTokens';
      return s.stopReason === null;
    },
  };
  return s;
}

/** A strategy that emits `perRound` tokens a round (fewer when room is short) and records each room. */
function emitting(session: ReturnType<typeof stubSession>, perRound: number, rooms: number[]): RoundStrategy {
  return {
    async round(at: Cursor, room: number) {
      rooms.push(room);
      const n = Math.min(perRound, room + 1);
      for (let i = 0; i < n; i++) if (!session.accept(7)) return null;
      return { p: at.p + n, last: 7 };
    },
  };
}

describe('driveRounds', () => {
  it('gives each round the room the token limit leaves, and stops at it', async () => {
    const session = stubSession(10);
    const rooms: number[] = [];
    const stats = newStats(null);
    await driveRounds(session as unknown as DecodeSession, stats, 1000, { p: 5, last: 3 }, emitting(session, 4, rooms));
    // the prompt's token is the first; rounds then emit 4, 4 and the last 1 (room 0)
    expect(rooms).toEqual([8, 4, 0]);
    expect(session.tokens).toHaveLength(10);
    expect(session.stopReason).toBe('maxTokens');
    expect(stats.rounds).toBe(3);
    expect(stats.corrections).toBe(1);
    expect(stats.tokensPerRound).toBeCloseTo(10 / 3);
  });

  it('gives each round the room the context leaves, and stops when it is full', async () => {
    const session = stubSession(100);
    const rooms: number[] = [];
    await driveRounds(session as unknown as DecodeSession, newStats(null), 12, { p: 5, last: 3 }, emitting(session, 4, rooms));
    // positions 5..11: a round at p writes cells p .. p + room, so room = 11 - p
    expect(rooms).toEqual([6, 2]);
    expect(session.stopReason).toBe('contextFull');
    expect(session.tokens).toHaveLength(1 + 4 + 3);
  });

  it('gives no round more than MAX_ROUND_DRAFTS drafts (a verification stays within one-row kernels)', async () => {
    const session = stubSession(1000);
    const rooms: number[] = [];
    await driveRounds(session as unknown as DecodeSession, newStats(null), 4096, { p: 5, last: 3 }, emitting(session, 100, rooms));
    expect(MAX_ROUND_DRAFTS).toBe(64);
    expect(Math.max(...rooms)).toBe(MAX_ROUND_DRAFTS);
    expect(rooms.every((r) => r <= MAX_ROUND_DRAFTS)).toBe(true);
  });

  it('runs no round when the prompt token ends the generation', async () => {
    const session = stubSession(100);
    const rooms: number[] = [];
    const stats = newStats(null);
    await driveRounds(session as unknown as DecodeSession, stats, 100, { p: 5, last: 0 }, emitting(session, 4, rooms));
    expect(rooms).toEqual([]);
    expect(stats.rounds).toBe(0);
    expect(session.stopReason).toBe('eos');
  });

  it("ends the generation when the strategy's recover hook takes the error, else rethrows it", async () => {
    const failing = (recover?: RoundStrategy['recover']): RoundStrategy => ({
      async round(at) {
        if (at.p > 6) throw new Error('out of cells');
        return { p: at.p + 2, last: 7 };
      },
      recover,
    });
    const seen: Cursor[] = [];
    const session = stubSession(100);
    const stats = newStats(null);
    const r = await driveRounds(
      session as unknown as DecodeSession,
      stats,
      100,
      { p: 5, last: 3 },
      failing((e, at) => {
        seen.push(at);
        return e instanceof Error && e.message === 'out of cells';
      }),
    );
    expect(r).toBe(stats);
    expect(seen).toEqual([{ p: 7, last: 7 }]); // where the failed round started
    expect(stats.rounds).toBe(2);
    await expect(driveRounds(stubSession(100) as unknown as DecodeSession, newStats(null), 100, { p: 5, last: 3 }, failing())).rejects.toThrow('out of cells');
    await expect(
      driveRounds(
        stubSession(100) as unknown as DecodeSession,
        newStats(null),
        100,
        { p: 5, last: 3 },
        failing(() => false),
      ),
    ).rejects.toThrow('out of cells');
  });
});
