// patches/0021: ggml_vec_dot_f32_rows computes a block of F32 dot products (a query against a
// block of keys) with their horizontal sums transposed; every product must equal
// ggml_vec_dot_f32's one-row call bit for bit, because a thread's share of a product's keys holds
// whole blocks in one decode and a partial block (one-row calls) in another. Compiled and run by
// test/vec-dot-f32-rows.test.ts against the patched tree's vec.cpp, once per x86 SIMD level.
#include "vec.h"

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

// defined in ggml-cpu.c, which this test does not link (vec.cpp's F16 products read it; they are not called)
float ggml_table_f32_f16[1 << 16];

int main() {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    long checked = 0, differ = 0;
    int lengths = 0, width_seen = 0;
    for (int n = 1; n <= 320; n++) {
        const int width = ggml_vec_dot_f32_rows_width(n);
        if (width == 0) continue;
        lengths++;
        width_seen = width;
        const size_t stride = n + 13; // rows apart, as a head's keys are in the KV cache
        std::vector<float> x(stride * width), y(n);
        for (int trial = 0; trial < 300; trial++) {
            const float scale = trial % 3 == 0 ? 1e-3f : trial % 3 == 1 ? 1.0f : 1e3f;
            for (auto & v : x) v = normal(rng) * scale;
            for (auto & v : y) v = normal(rng);
            for (int k = 0; k < width; k++) {
                for (int i = 0; i + 1 < n; i += 2) {
                    if (trial % 5 == 0) { // products that cancel in pairs: sums of exactly zero
                        y[i + 1] = y[i];
                        x[k * stride + i + 1] = -x[k * stride + i];
                    } else if (trial % 5 == 1 && i % 3 == 0) { // exact zeros
                        x[k * stride + i] = 0.0f;
                    }
                }
            }
            float s[16];
            ggml_vec_dot_f32_rows(n, s, x.data(), stride * sizeof(float), y.data());
            for (int k = 0; k < width; k++) {
                float one;
                ggml_vec_dot_f32(n, &one, 0, x.data() + k * stride, 0, y.data(), 0, 1);
                checked++;
                if (std::memcmp(&one, &s[k], sizeof(float)) != 0 && differ++ < 5) {
                    std::printf("n %d, trial %d, row %d: one-row %.9g, block %.9g\n", n, trial, k, one, s[k]);
                }
            }
        }
    }
    std::printf("width %d, lengths %d, products %ld, differ %ld\n", width_seen, lengths, checked, differ);
    return differ == 0 ? 0 : 1;
}
