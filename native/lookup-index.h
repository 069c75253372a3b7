// The context lookup of decodeRun's lookup rounds (context-run.cc): where the newest tokens of a
// sequence occurred before, so that what followed them there can be verified as drafts. Internal to
// the addon; lib/decoding/context-lookup.ts is the TypeScript loop's own index of the same tokens.
#pragma once

#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <utility>
#include <vector>

namespace layerskip {

// n-grams of 8, 4, 2 and 1 tokens, each mapped to the position of the last token of its newest
// occurrence; a match is the longest of them that occurred before, extended backwards (up to 64
// tokens). One per sequence, kept between calls: a call whose context starts with the tokens held
// adds only the rest (a chat's next turn, the next run of a generation), any other rebuilds it.
class LookupIndex {
public:
    static constexpr int32_t kMaxMatch = 64;

    // holds exactly `context` afterwards
    void sync(const int32_t * context, size_t n) {
        const size_t held = tokens_.size();
        if (held > n || (held > 0 && std::memcmp(tokens_.data(), context, held * sizeof(int32_t)) != 0)) {
            tokens_.clear();
            for (auto & m : maps_) m.clear();
            done_ = 0;
        }
        tokens_.insert(tokens_.end(), context + tokens_.size(), context + n);
    }

    void push(int32_t token) { tokens_.push_back(token); }

    const std::vector<int32_t> & tokens() const { return tokens_; }

    // (match length, position of the earlier occurrence's last token) for the newest tokens;
    // (0, -1) when the newest token never occurred before
    std::pair<int32_t, int32_t> match() {
        const int32_t t = static_cast<int32_t>(tokens_.size());
        index_upto(t - 1);  // the n-grams ending before the newest token: only earlier occurrences
        for (int o = 0; o < kOrders; ++o) {
            const int32_t n = kOrder[o];
            if (t < n) continue;
            const auto it = maps_[o].find(key(t - 1, n));
            if (it == maps_[o].end()) continue;
            const int32_t e = it->second;
            int32_t m = 0;
            while (m < kMaxMatch && e - m >= 0 && tokens_[e - m] == tokens_[t - 1 - m]) ++m;
            if (m >= n) return {m, e};  // (fewer: a hash collision)
        }
        return {0, -1};
    }

private:
    static constexpr int kOrders = 4;
    static constexpr int32_t kOrder[kOrders] = {8, 4, 2, 1};

    // FNV-1a over the n tokens ending at `end`
    uint64_t key(int32_t end, int32_t n) const {
        uint64_t k = 1469598103934665603ull;
        for (int32_t i = end - n + 1; i <= end; ++i) k = (k ^ static_cast<uint32_t>(tokens_[i])) * 1099511628211ull;
        return k;
    }

    // the n-grams ending before position `k` are in the maps (the newest occurrence wins)
    void index_upto(int32_t k) {
        for (; done_ < k; ++done_) {
            for (int o = 0; o < kOrders; ++o) {
                if (done_ + 1 >= kOrder[o]) maps_[o][key(done_, kOrder[o])] = done_;
            }
        }
    }

    std::vector<int32_t> tokens_;
    std::unordered_map<uint64_t, int32_t> maps_[kOrders];
    int32_t done_ = 0;
};

}  // namespace layerskip
