// What the decoding loops produce: the chunks they stream, why they stop, and their statistics.
// The runtime objects above (generation.ts, context.ts) re-export these; the loops never import
// from them.

export type StopReason = 'eos' | 'maxTokens' | 'stopString' | 'contextFull';

export interface GenerationChunk {
  /** Text that became final with this chunk (may be empty while a UTF-8 character or a possible stop string is pending). */
  text: string;
  /** The tokens this chunk adds. */
  tokens: number[];
}

/** What one draft source proposed and what the full model kept of it. */
export interface SourceStats {
  /** Rounds whose first draft came from this source. */
  rounds: number;
  drafted: number;
  accepted: number;
  /** Per draft position in the round (0 = the first draft): drafts from this source there, and the accepted ones. */
  draftedByPosition: number[];
  acceptedByPosition: number[];
  /** Drafting time (0 for free sources) and the verification time of the rounds this source began. */
  draftMs: number;
  verifyMs: number;
  /**
   * Context lookup only: tokens this generation added to the lookup's index. The sequence keeps the
   * index between generations, so a prompt that extends the previous context (a chat's next turn)
   * adds only its new tokens and the output, not the whole context again.
   */
  indexed?: number;
}

export interface SpeculativeStats {
  /** The early exit's layer; null when only free drafts (lookup, prediction) ran. */
  exitLayer: number | null;
  /** Draft tokens proposed by early exit. */
  drafted: number;
  /** Draft tokens the full model accepted. */
  accepted: number;
  /** Tokens the full model produced itself (a correction at the first disagreement, or the bonus token). */
  corrections: number;
  /** accepted / drafted (0 when nothing was drafted). */
  acceptanceRate: number;
  /** Draft / verify rounds. */
  rounds: number;
  /** Generated tokens per round. */
  tokensPerRound: number;
  draftMs: number;
  verifyMs: number;
  samplingMs: number;
  /** The draft length of each round (adaptive drafting changes it). */
  draftLengths: number[];
  /** With overlap: rounds whose drafts were made while the previous round was verified. */
  pipelinedRounds?: number;
  /** With lookup: rounds drafted from the context, their draft tokens and the accepted ones (not in drafted/accepted). */
  lookup?: { rounds: number; drafted: number; accepted: number };
  /**
   * Per draft source (early exit, context lookup, the caller's prediction): what it drafted, what
   * was accepted, per draft position, and the time of its rounds. A round can mix sources (a lookup
   * draft that early exit continues): each draft counts for its own source.
   */
  sources: { earlyExit?: SourceStats; lookup?: SourceStats; prediction?: SourceStats };
}
