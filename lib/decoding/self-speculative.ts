// Self-speculative decoding (LayerSkip): draft with the first E layers (early exit through the
// model's own norm and LM head), verify the drafts with layers [E, N) from their cached layer-E
// hidden states in one call, accept the longest agreeing prefix plus the full model's own next
// token, and roll the KV cache back to what was accepted.
//
// Greedy: a draft is accepted iff it equals the full model's argmax, so the output is the
// plain greedy output token for token. Sampling: standard speculative sampling (accept with
// min(1, p/q), else resample from norm(max(0, p − q))), which keeps the full model's distribution.
import { checkInteger, checkNumber } from '../errors.js';
import type { SpeculativeStats } from '../generation.js';
import type { NativeContext, NativeDecodeResult, NativeModelInfo } from '../native.js';
import { distribution, Rng, sampleFrom, type ResolvedSampling } from '../sampling.js';
import { DraftPolicy } from './draft-policy.js';
import { pickToken } from './plain.js';
import type { DecodeSession } from './session.js';

export interface SelfSpeculativeOptions {
  /** Draft with layers [0, exitLayer); 1 <= exitLayer < layer count. */
  exitLayer: number;
  /** Most draft tokens per round (default 4; 1..64). */
  draftTokens?: number;
  /** Choose each round's draft length (0..draftTokens) from observed acceptance and measured costs (default false). */
  adaptive?: boolean;
  /** Stop a draft when the draft's top probability falls below this (default 0 = never; 0.3 when adaptive). */
  minDraftProbability?: number;
  /** 'cached': verify from the drafts' cached layer-E hidden states (default); 'full': re-run all layers on the drafts. */
  verification?: 'cached' | 'full';
}

export interface ResolvedSelfSpeculative {
  exitLayer: number;
  draftTokens: number;
  adaptive: boolean;
  minDraftProbability: number;
  verification: 'cached' | 'full';
  layerCount: number;
}

export function resolveSelfSpeculative(o: SelfSpeculativeOptions, info: NativeModelInfo): ResolvedSelfSpeculative {
  if (typeof o !== 'object' || o === null) throw new TypeError('selfSpeculative must be an object');
  if (info.architecture !== 'llama') {
    throw new Error(`selfSpeculative: layer-range decoding supports the llama architecture; this model is ${info.architecture}`);
  }
  const n = info.layerCount;
  if (n < 2) throw new RangeError('selfSpeculative: the model needs at least 2 layers');
  const exitLayer = checkInteger('selfSpeculative.exitLayer', o.exitLayer, 1, n - 1);
  const draftTokens = checkInteger('selfSpeculative.draftTokens', o.draftTokens ?? 4, 1, 64);
  const adaptive = o.adaptive ?? false;
  const minDraftProbability = checkNumber('selfSpeculative.minDraftProbability', o.minDraftProbability ?? (adaptive ? 0.3 : 0), 0, 1);
  const verification = o.verification ?? 'cached';
  if (verification !== 'cached' && verification !== 'full') throw new RangeError("selfSpeculative.verification must be 'cached' or 'full'");
  return { exitLayer, draftTokens, adaptive, minDraftProbability, verification, layerCount: n };
}

export async function selfSpeculativeLoop(
  ctx: NativeContext,
  first: NativeDecodeResult,
  session: DecodeSession,
  sampling: ResolvedSampling,
  nVocab: number,
  spec: ResolvedSelfSpeculative,
  onCached: (token: number) => void,
): Promise<SpeculativeStats> {
  const E = spec.exitLayer;
  const N = spec.layerCount;
  const greedy = sampling.temperature === 0;
  const rng = new Rng(sampling.seed);
  const policy = spec.adaptive ? new DraftPolicy(spec.draftTokens, E / N) : null;
  const wantProbs = spec.minDraftProbability > 0;
  const hasStops = session.hasStopStrings;
  const contextSize = ctx.state().contextSize;
  const stats: SpeculativeStats = {
    exitLayer: E, drafted: 0, accepted: 0, corrections: 0, acceptanceRate: 0, rounds: 0,
    tokensPerRound: 0, draftMs: 0, verifyMs: 0, samplingMs: 0, draftLengths: [],
  };
  const finish = () => {
    stats.acceptanceRate = stats.drafted > 0 ? stats.accepted / stats.drafted : 0;
    stats.tokensPerRound = stats.rounds > 0 ? session.tokens.length / stats.rounds : 0;
    return stats;
  };

  // the first token comes from the prompt's full decode
  let last = pickToken(first, sampling, rng, 0, nVocab);
  if (!session.accept(last)) return (stats.corrections += session.tokens.length, finish());
  stats.corrections++;

  const drafts: number[] = [];
  const draftDists: Float64Array[] = [];
  while (!session.done) {
    session.check();
    const p = ctx.state().nextPosition; // `last` goes here
    if (p >= contextSize) {
      session.stop('contextFull');
      break;
    }
    // drafts must fit the token limit (a round emits up to k + 1 tokens) and the context
    const room = Math.min(session.maxTokens - session.tokens.length - 1, contextSize - 1 - p);
    const want = Math.max(0, Math.min(policy ? policy.next() : spec.draftTokens, room));
    stats.rounds++;

    if (want === 0) {
      // plain step: the full model's next token
      const t0 = performance.now();
      const r = await ctx.decode({ tokens: Int32Array.of(last), logits: !greedy });
      const t1 = performance.now();
      policy?.observeFullStep(t1 - t0);
      stats.verifyMs += t1 - t0;
      onCached(last);
      const before = session.tokens.length;
      last = pickToken(r, sampling, rng, 0, nVocab);
      stats.samplingMs += performance.now() - t1;
      stats.draftLengths.push(0);
      if (session.accept(last)) stats.corrections++;
      else stats.corrections += session.tokens.length - before;
      continue;
    }

    // draft: early exit at E, one token at a time
    drafts.length = 0;
    draftDists.length = 0;
    let feed = last;
    let needsDraftDecode = true; // the newest draft token still has to go through layers [0, E)
    const tDraft = performance.now();
    for (let i = 0; i < want; i++) {
      const r = await ctx.decode({ tokens: Int32Array.of(feed), layers: [0, E], logits: !greedy, probs: wantProbs });
      needsDraftDecode = false;
      if (wantProbs && i > 0 && r.maxProb![0] < spec.minDraftProbability) break; // not confident: verify what we have
      let tok: number;
      if (greedy) tok = r.argmax[0];
      else {
        const q = distribution(r.logits!, sampling, 0, nVocab);
        tok = sampleFrom(q, rng);
        draftDists.push(q);
      }
      drafts.push(tok);
      feed = tok;
      needsDraftDecode = true;
      if (session.isEog(tok) || (hasStops && session.wouldStop(drafts))) break; // drafting further is wasted
    }
    const k = drafts.length;
    // a bonus row (the full model's token after the last draft) needs the last draft's position;
    // after an end-of-generation draft there is nothing to predict
    // (a probe of the adaptive policy skips it: it only measures acceptance, as cheaply as it can)
    const bonus = !session.isEog(drafts[k - 1]) && !policy?.probing;
    if (spec.verification === 'cached' && needsDraftDecode && bonus) {
      await ctx.decode({ tokens: Int32Array.of(drafts[k - 1]), layers: [0, E], outputs: 'none' });
    }
    const tVerify = performance.now();
    stats.draftMs += tVerify - tDraft;
    policy?.observeDraftStep((tVerify - tDraft) / (needsDraftDecode && !bonus ? k : k + 1));

    // verify positions p .. p+k (or p+k-1 without a bonus position) with the full model
    let rows: number;
    let v: NativeDecodeResult;
    if (spec.verification === 'cached') {
      rows = bonus ? k + 1 : k;
      v = await ctx.decode({ layers: [E, N], count: rows, outputs: 'all', logits: !greedy });
    } else {
      ctx.removeFrom(p);
      const seq = [last, ...drafts.slice(0, bonus ? k : k - 1)];
      rows = seq.length;
      v = await ctx.decode({ tokens: Int32Array.from(seq), outputs: 'all', logits: !greedy });
    }
    const tAccept = performance.now();
    stats.verifyMs += tAccept - tVerify;
    policy?.observeVerify(rows, tAccept - tVerify);
    stats.drafted += k;
    stats.draftLengths.push(k);

    // accept the agreeing prefix
    let nAcc = 0;
    let next = -1;
    for (let j = 0; j < k; j++) {
      if (greedy) {
        if (v.argmax[j] !== drafts[j]) {
          next = v.argmax[j];
          break;
        }
      } else {
        const pj = distribution(v.logits!, sampling, j * nVocab, nVocab);
        const qj = draftDists[j];
        const d = drafts[j];
        if (rng.next() * qj[d] >= pj[d]) {
          next = sampleFrom(residual(pj, qj), rng); // rejected: resample from norm(max(0, p - q))
          break;
        }
      }
      nAcc++;
    }
    if (next < 0 && nAcc < rows) next = pickToken(v, sampling, rng, nAcc, nVocab); // bonus: every draft agreed
    policy?.observeRound(k, nAcc);

    // Verified positions p .. p+rows-1 hold `last` and drafts[0 .. rows-1). Keep `last` and the
    // accepted drafts that have a position; with a full-model token (`next`) that is p .. p+nAcc.
    // Without one (every draft accepted and no bonus row: an end-of-generation draft or a probe),
    // the last accepted draft has no position yet and becomes the next round's `last`.
    const kept = next >= 0 ? nAcc : nAcc - 1;
    ctx.removeFrom(p + kept + 1);
    onCached(last);
    for (let j = 0; j < kept; j++) onCached(drafts[j]);
    stats.samplingMs += performance.now() - tAccept;

    let ok = true;
    for (let j = 0; j < nAcc && ok; j++) {
      const before = session.tokens.length;
      ok = session.accept(drafts[j]);
      if (session.tokens.length > before) stats.accepted++;
    }
    if (!ok) break;
    if (next < 0) {
      last = drafts[nAcc - 1];
      continue;
    }
    last = next;
    const before = session.tokens.length;
    session.accept(last);
    if (session.tokens.length > before) stats.corrections++;
  }
  return finish();
}

/** norm(max(0, p − q)): the distribution a rejected draft is resampled from. */
function residual(p: Float64Array, q: Float64Array): Float64Array {
  const r = new Float64Array(p.length);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const d = p[i] - q[i];
    if (d > 0) {
      r[i] = d;
      sum += d;
    }
  }
  if (sum <= 0) return p; // p == q: any rejection was impossible; keep p for safety
  for (let i = 0; i < r.length; i++) r[i] /= sum;
  return r;
}
