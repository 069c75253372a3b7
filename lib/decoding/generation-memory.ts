// What a sequence's adaptive choices learnt, kept from one generation to the next: the draft
// policy (measured draft, full-step and verification costs, early-exit acceptance, steps since its
// last probe), the free-draft measurements (round costs, acceptance per source, probe spacing) and
// the context lookup's index of the sequence's tokens.
//
// Without it every generation starts from guesses and measures them again with probes. On
// stories260K, where early exit cannot pay, a probe costs about 5 plain steps: the two probes of a
// fresh 256-token generation took 3-4% of it. Chat turns and repeated calls on one context are the
// common case, so a sequence keeps what it measured. Choices only ever change speed: greedy output
// is plain output and sampling stays exact whatever the draft lengths.
import type { DraftHead } from '../draft-head/draft-head.js';
import type { ContextLookup } from './context-lookup.js';
import type { DraftPolicy } from './draft-policy.js';
import { FreeAcceptance, FreeRoundCost, type ResolvedFreeDrafts } from './draft-sources.js';
import type { NgramFilter } from './ngram-filter.js';
import type { ResolvedSampling } from './sampling.js';

/** The free-draft state that outlives a generation. */
export interface FreeMemory {
  acceptance: FreeAcceptance;
  cost: FreeRoundCost;
  /** Tokens since the last free round, and how many may pass before a probe. */
  sinceFree: number;
  probeInterval: number;
  /** Tokens per ms of recent early-exit rounds (NaN before one ran). */
  earlyExitRate: number;
}

/** The context lookup's index of a sequence's tokens and the repeat filter over them (null before a run needed one). */
export interface KeptLookup {
  lookup: ContextLookup;
  filter: NgramFilter | null;
}

/** The free-draft state of a sequence that has measured nothing yet. */
export function newFreeMemory(probeEvery: number): FreeMemory {
  return { acceptance: new FreeAcceptance(), cost: new FreeRoundCost(), sinceFree: 0, probeInterval: probeEvery, earlyExitRate: NaN };
}

/** What the in-turn loop needs to know of a generation's configuration to pick its memory. */
export interface MemoryKeyParts {
  exitLayer: number | null;
  draftTokens: number;
  verification: string;
  draftHead: DraftHead | string | null;
  sampling: ResolvedSampling;
  free: ResolvedFreeDrafts | null;
}

/**
 * One sequence's memory, per configuration (costs differ with the exit, the head and sampling). It
 * holds the most recently used configurations only, so that an application that fits a new draft
 * head for every request does not accumulate policies.
 */
export class GenerationMemory {
  static readonly maxConfigurations = 16;
  private readonly policies = new Map<string, DraftPolicy>();
  private readonly free = new Map<string, FreeMemory>();
  // one whatever the configuration: the index depends only on the tokens
  private lookup: KeptLookup | null = null;
  // a draft head object has no name: it is told apart by identity
  private readonly headIds = new WeakMap<object, number>();
  private nextHeadId = 0;

  /** The draft policy for this configuration, made on first use; ready for a new generation. */
  policy(parts: MemoryKeyParts, make: () => DraftPolicy): DraftPolicy {
    const key = this.key(parts);
    const p = this.policies.get(key) ?? make();
    remember(this.policies, key, p);
    p.startGeneration();
    return p;
  }

  /** The free-draft state for this configuration, made on first use; ready for a new generation. */
  freeState(parts: MemoryKeyParts, probeEvery: number): FreeMemory {
    const key = this.key(parts);
    const m = this.free.get(key) ?? newFreeMemory(probeEvery);
    remember(this.free, key, m);
    m.acceptance.startGeneration();
    return m;
  }

  /**
   * The lookup index an earlier generation kept, if the new context `tokens` (the prompt, earlier
   * turns included) starts with everything it indexed; else null, and it is dropped. Either way the
   * sequence holds none until keepLookup: the generation owns it (it runs alone on the sequence).
   * Rebuilt every generation, a chat's index cost a pass over the whole conversation per turn.
   */
  takeLookup(tokens: readonly number[]): KeptLookup | null {
    const kept = this.lookup;
    this.lookup = null;
    return kept?.lookup.isPrefixOf(tokens) ? kept : null;
  }

  /** Keeps a generation's lookup index (its tokens: the context and what the generation added) for the next one. */
  keepLookup(kept: KeptLookup): void {
    this.lookup = kept;
  }

  private key(p: MemoryKeyParts): string {
    const head = p.draftHead === null ? '-' : typeof p.draftHead === 'string' ? `path:${p.draftHead}` : `head:${this.headId(p.draftHead)}`;
    // greedy verifications copy no logits, sampling ones do: their costs differ
    const greedy = p.sampling.temperature === 0 ? 'greedy' : 'sampled';
    const free = p.free ? `${p.free.lookup ? 'lookup' : ''}${p.free.prediction ? '+prediction' : ''}/${p.free.maxTokens}/${p.free.choice}` : 'none';
    return `${p.exitLayer ?? '-'}/${p.draftTokens}/${p.verification}/${head}/${greedy}/${free}`;
  }

  private headId(head: object): number {
    let id = this.headIds.get(head);
    if (id === undefined) {
      id = this.nextHeadId++;
      this.headIds.set(head, id);
    }
    return id;
  }
}

/** Puts `value` last in the map's order (most recently used) and drops the least recently used past the bound. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > GenerationMemory.maxConfigurations) map.delete(map.keys().next().value as string);
}
