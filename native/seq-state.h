// SeqState: one sequence's KV bookkeeping, and the only code that writes it. Its transitions are
// the invariants patches/README.md states for a layer-range decode:
//   - positions [0, n_past) are in the KV cache; [0, n_full) hold every layer;
//   - [n_full, n_past) hold only layers [0, draft_layer): early-exit drafts awaiting verification,
//     whose layer-draft_layer hidden states `hidden` keeps (one row of n_embd per position);
//   - with no drafts pending, draft_layer is 0 and `hidden` is empty;
//   - [split_from, n_past) came from split decodes at split_layer (no KV below it; -1: none).
// The counters are atomics: state() reads them on the JavaScript thread while a worker writes them.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace layerskip {

class SeqState {
public:
    explicit SeqState(int32_t n_embd) : n_embd_(n_embd) {}

    int32_t n_past() const { return n_past_.load(); }
    int32_t n_full() const { return n_full_.load(); }
    int32_t draft_layer() const { return draft_layer_.load(); }
    int32_t split_from() const { return split_from_.load(); }
    int32_t split_layer() const { return split_layer_.load(); }
    bool has_drafts() const { return n_full_ < n_past_; }
    int32_t pending() const { return n_past_ - n_full_; }
    // pending drafts that exit at `layer` (what a verification from layer `layer` needs)
    bool drafts_at(int32_t layer) const { return has_drafts() && draft_layer_ == layer; }
    // the cached hidden states of the pending drafts, the oldest first
    const std::vector<float> & hidden() const { return hidden_; }

    // every layer of [n_past, end) was decoded: nothing is pending
    void full_decoded(int32_t end) {
        n_past_ = end;
        n_full_ = end;
    }

    // a draft call starts: with nothing pending, the previous call's cache is stale
    void begin_drafts() {
        if (!has_drafts()) hidden_.clear();
    }

    // `n` more positions ran layers [0, layer); `h` holds their layer-`layer` states
    void drafts_decoded(int32_t layer, const float * h, int32_t n) {
        begin_drafts();
        hidden_.insert(hidden_.end(), h, h + (size_t)n * n_embd_);
        draft_layer_ = layer;
        n_past_ += n;
    }

    // the first `n` pending drafts now hold every layer (verified here or, markVerified, elsewhere)
    void verified(int32_t n) {
        hidden_.erase(hidden_.begin(), hidden_.begin() + (size_t)n * n_embd_);
        n_full_ += n;
        settle();
    }

    // layers [layer, N) of n new positions ran from hidden states another context made
    void split_decoded(int32_t layer, int32_t n) {
        if (split_from_ < 0) {
            split_from_ = n_past_.load();
            split_layer_ = layer;
        }
        full_decoded(n_past_ + n);
    }

    // positions from `pos` on left the KV cache
    void remove_from(int32_t pos) {
        if (pos >= n_past_) return;
        if (pos < n_full_) {
            n_full_ = pos;
            hidden_.clear();
        } else {
            hidden_.resize((size_t)(pos - n_full_) * n_embd_);
        }
        n_past_ = pos;
        settle();
        if (pos <= split_from_) split_from_ = -1;
    }

    void clear() {
        n_past_ = n_full_ = draft_layer_ = 0;
        split_from_ = -1;
        hidden_.clear();
    }

private:
    void settle() {
        if (n_full_ == n_past_) draft_layer_ = 0;
    }

    const int32_t n_embd_;
    std::atomic<int32_t> n_past_{0}, n_full_{0}, draft_layer_{0};
    std::atomic<int32_t> split_from_{-1}, split_layer_{0};
    std::vector<float> hidden_;
};

}  // namespace layerskip
