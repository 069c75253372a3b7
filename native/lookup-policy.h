// How many lookup drafts decodeRun's lookup rounds verify (context-run.cc): the TypeScript loop's own
// choice (lib/decoding/draft-sources.ts, FreeAcceptance and bestFreeLength) carried into the addon's
// loop, so that each round's outcome informs the next one as it does there. TypeScript passes its
// state at the call's start and replays the call's rounds into its own afterwards; the formulas
// here must stay those of draft-sources.ts (test/lookup-run.test.ts replays a run's choices there).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

namespace layerskip {

struct LookupPolicy {
    static constexpr int kBuckets = 5;  // matches of 1-2, 3-4, 5-8, 9-16 and 17 or more tokens
    // per bucket: the decayed counts of accepted and rejected drafts, and the prior acceptance
    double accepted[kBuckets] = {};
    double rejected[kBuckets] = {};
    double prior[kBuckets] = {};
    double prior_weight = 2;   // the prior's pseudo-observations
    double decay = 0.95;       // per drafted token, of the buckets a round reaches
    double ageing = 0.995;     // of every count, per round
    // a round of r rows costs round_base + round_row * r ms (its switch back to plain steps included)
    double round_base = 0, round_row = 0;
    double plain_ms = 1;       // one plain step (at position 0, as the round costs)
    // what a plain step and each row of a round cost more a position on (FreeRoundCost's slope: the
    // KV window attention covers grows), and the position the next round or step decodes at
    double step_slope = 0;
    int32_t position = 0;
    double plain_margin = 1;   // a free round must be expected this much faster than a plain step
    // a round's cost by its rows where measured often enough (FreeRoundCost.sizeCosts; 0: the line)
    static constexpr int32_t kCostRows = 66;
    double round_costs[kCostRows] = {};
    int32_t limit = 0;         // the most drafts the measured round sizes allow (0: no limit; raised after each round)
    int32_t max_drafts = 16;   // the most drafts of one round (lookup.maxTokens)

    static int bucket(int32_t match) { return match <= 2 ? 0 : match <= 4 ? 1 : match <= 8 ? 2 : match <= 16 ? 3 : 4; }

    // FreeRoundCost.plainMs: a plain step at `position`
    double plain_at() const { return plain_ms + step_slope * position; }

    // FreeRoundCost.plainRate: tokens per ms a free round must beat where the alternative is a plain step
    double plain_rate() const { return plain_margin / plain_at(); }

    // FreeRoundCost.roundMs: a round of `rows` rows at `position`, as measured for that size, else on the line
    double round_ms(int32_t rows) const {
        const double at0 = rows < kCostRows && round_costs[rows] > 0 ? round_costs[rows] : round_base + round_row * rows;
        return at0 + rows * step_slope * position;
    }

    // per-draft acceptance after a match of `match` tokens
    double estimate(int32_t match) const {
        const int b = bucket(match);
        return (accepted[b] + prior_weight * prior[b]) / (accepted[b] + rejected[b] + prior_weight);
    }

    // bestFreeLength over the estimates of drafts 0 .. room-1 (draft i at match + i): the number of
    // drafts with the most tokens per ms, and that rate
    std::pair<int32_t, double> best(int32_t match, int32_t room) const {
        const int32_t max = std::min(max_drafts, room);
        const int32_t lim = limit > 0 ? std::min(max, limit) : max;
        double tokens = 1, reach = 1, rate = 0;
        int32_t length = 0;
        for (int32_t d = 1; d <= lim; ++d) {
            reach *= estimate(match + d - 1);
            tokens += reach;
            const double r = tokens / round_ms(d + 1);
            if (r > rate) {
                rate = r;
                length = d;
            }
        }
        return {length, rate};
    }

    // FreeAcceptance.observe: `drafted` drafts after a match of `match`, `accepted_drafts` accepted
    void observe(int32_t match, int32_t drafted, int32_t accepted_drafts) {
        const double d = std::pow(decay, drafted);
        int previous = -1;
        for (int32_t i = 0; i <= std::min(accepted_drafts, drafted - 1); ++i) {
            const int b = bucket(match + i);
            if (b != previous) {
                previous = b;
                accepted[b] *= d;
                rejected[b] *= d;
            }
            if (i < accepted_drafts) accepted[b] += 1;
            else rejected[b] += 1;
        }
    }

    // FreeAcceptance.age: once a round
    void age() {
        for (int b = 0; b < kBuckets; ++b) {
            accepted[b] *= ageing;
            rejected[b] *= ageing;
        }
    }
};

}  // namespace layerskip
