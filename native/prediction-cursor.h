// The caller's prediction in decodeRun's free rounds (context-run.cc): where the output stands in
// the prediction, so that its next tokens can be verified as drafts. The same rules as
// lib/decoding/prediction.ts (PredictionDrafts), which hands its state over at a call's start and
// follows the call's tokens itself afterwards; the two must agree (test/lookup-run.test.ts runs the
// addon's choices against the TypeScript loop's).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace layerskip {

class PredictionCursor {
public:
    // newest output tokens that must agree with the prediction before drafts resume after a mismatch
    static constexpr int32_t kOrders[3] = {4, 3, 2};
    static constexpr size_t kRecent = 8;

    std::vector<int32_t> prediction;
    int32_t cursor = 0;  // where the next output token is expected; -1 while unaligned
    int32_t agreed = 0;  // the furthest position agreed with so far: re-alignment searches after it
    int32_t run = 0;     // output tokens in a row that followed the prediction
    std::vector<int32_t> recent;  // the newest output tokens (up to kRecent)

    // output tokens in a row that agreed with the prediction (0 while unaligned)
    int32_t match_length() const { return cursor >= 0 ? run : 0; }

    // how many tokens of the prediction follow the output's position (0 while unaligned)
    int32_t remaining() const { return cursor < 0 ? 0 : static_cast<int32_t>(prediction.size()) - cursor; }

    // the prediction's next tokens, up to `max`
    void draft(int32_t max, std::vector<int32_t> & out) const {
        out.clear();
        if (cursor < 0) return;
        const int32_t end = std::min<int32_t>(static_cast<int32_t>(prediction.size()), cursor + std::max(0, max));
        out.assign(prediction.begin() + cursor, prediction.begin() + std::max(cursor, end));
    }

    void push(int32_t token) {
        recent.push_back(token);
        if (recent.size() > kRecent) recent.erase(recent.begin());
        if (cursor >= 0 && cursor < static_cast<int32_t>(prediction.size()) && prediction[cursor] == token) {
            ++cursor;
            agreed = std::max(agreed, cursor);
            ++run;
            return;
        }
        run = 0;
        cursor = realign();
    }

private:
    // the position after the first occurrence of the newest n output tokens (n = 4, 3, 2) that ends
    // at or after the agreed part, or -1. A scan, not an index: it runs only after a mismatch, and
    // an index would be built again in every call
    int32_t realign() {
        const int32_t p = static_cast<int32_t>(prediction.size());
        for (const int32_t n : kOrders) {
            if (static_cast<int32_t>(recent.size()) < n) continue;
            const int32_t * tail = recent.data() + recent.size() - n;
            for (int32_t s = std::max(0, agreed - n); s + n <= p; ++s) {
                if (std::equal(tail, tail + n, prediction.begin() + s)) {
                    run = n;
                    return s + n;
                }
            }
        }
        return -1;
    }
};

}  // namespace layerskip
