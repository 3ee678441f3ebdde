// matmul: every weight type and kernel level against a double-precision reference, bitwise
// agreement between levels, bitwise invariance to batch size / row position / thread count,
// column-slice packing, unpack_rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "shard/kernels/matmul_internal.h"
#include "shard/kernels/matmul.h"
#include "shard/kernels/quant.h"
#include "shard/kernels/thread_pool.h"
#include "tests/unit/gaussian.h"

using namespace tandem;

namespace {

struct Source {
  WeightType type;
  int64_t rows, cols;
  size_t stride;
  std::vector<uint8_t> bytes;  // ggml rows, `stride` apart
  const uint8_t* row(int64_t r) const { return bytes.data() + r * stride; }
};

// Gaussian weights with a per-row scale (so block scales differ), quantized row by row.
Source make_source(WeightType t, int64_t rows, int64_t cols, uint32_t seed) {
  Source s{t, rows, cols, row_bytes(t, cols), {}};
  s.bytes.resize(s.stride * rows);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> v(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.02f * (1 + r % 7);
    for (auto& x : v) x = n(rng) * scale;
    quantize_row(t, v.data(), s.bytes.data() + r * s.stride, cols);
  }
  return s;
}

std::vector<float> make_x(int64_t n_rows, int64_t cols, uint32_t seed) {
  std::vector<float> x = test::gaussian(static_cast<size_t>(n_rows * cols), seed);
  for (int64_t i = 0; i < cols; i += 97) x[i] *= 8;  // some outliers, as real activations have
  return x;
}

PackedMatrix pack(const Source& s) { return pack_matrix(s.type, s.rows, s.cols, s.bytes.data(), s.stride); }

// The activations the kernels see: for quantized weights the int8 blocks dequantized (computed
// with the scalar quantizer, which every level must match), for float weights x itself.
std::vector<float> effective_x(WeightType t, const std::vector<float>& x, int64_t n_rows, int64_t cols) {
  if (!kern::is_quantized(t)) return x;
  const int64_t bc = kern::block_cols(t), nb = cols / bc;
  std::vector<int8_t> q(cols);
  std::vector<float> d(nb), out(x.size());
  std::vector<int32_t> aux(nb * kern::aux_words(t));
  for (int64_t r = 0; r < n_rows; ++r) {
    kern::kernels_scalar().quantize(t, x.data() + r * cols, cols, q.data(), d.data(), aux.data());
    for (int64_t k = 0; k < cols; ++k) out[r * cols + k] = d[k / bc] * q[k];
  }
  return out;
}

// y_ref = x_eff · dequant(W)ᵀ in double, and Σ|w·x| per element for the tolerance.
void reference(const Source& s, const std::vector<float>& xe, int64_t n_rows, std::vector<double>& y,
               std::vector<double>& mag) {
  std::vector<float> w(s.cols);
  y.assign(n_rows * s.rows, 0);
  mag.assign(n_rows * s.rows, 0);
  for (int64_t o = 0; o < s.rows; ++o) {
    dequantize_row(s.type, s.row(o), w.data(), s.cols);
    for (int64_t r = 0; r < n_rows; ++r) {
      double acc = 0, m = 0;
      for (int64_t k = 0; k < s.cols; ++k) {
        const double p = static_cast<double>(w[k]) * xe[r * s.cols + k];
        acc += p;
        m += std::fabs(p);
      }
      y[r * s.rows + o] = acc;
      mag[r * s.rows + o] = m;
    }
  }
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

constexpr WeightType kTypes[] = {WeightType::F32,  WeightType::F16,  WeightType::BF16, WeightType::Q8_0,
                                 WeightType::Q4_0, WeightType::Q5_0, WeightType::Q4_K, WeightType::Q5_K,
                                 WeightType::Q6_K};

struct Shape {
  int64_t rows, cols;
};

}  // namespace

// Tolerance: |y - y_ref| ≤ 1e-5 · Σ|w·x| + 1e-30. The integer block sums are exact; what remains
// is float rounding of the per-block scale products and of the accumulation over ≤ 176 blocks
// (or ≤ 5632 fma steps for float weights, ~√K · 2^-24 relative in practice).
TEST(Matmul, EveryTypeAndLevelMatchesReference) {
  const auto levels = kern::kernels_available();
  ThreadPool pool(2);
  for (WeightType t : kTypes) {
    const int64_t bc = kern::block_cols(t) == 256 ? 256 : 32;
    for (Shape sh : {Shape{100, bc == 256 ? 256 : 96}, Shape{37, bc == 256 ? 768 : 512}, Shape{20, 5632}}) {
      SCOPED_TRACE(testing::Message() << name(t) << " " << sh.rows << "x" << sh.cols);
      const auto src = make_source(t, sh.rows, sh.cols, 11 + static_cast<uint32_t>(sh.cols));
      const auto w = pack(src);
      // 1 row: the GEMV kernels; 3: a short GEMM; 9: a full 8-row tile and a 1-row tail.
      for (const int64_t n_rows : {1, 3, 9}) {
        SCOPED_TRACE(testing::Message() << n_rows << " rows");
        const auto x = make_x(n_rows, sh.cols, 5);
        std::vector<double> ref, mag;
        reference(src, effective_x(t, x, n_rows, sh.cols), n_rows, ref, mag);
        std::vector<float> first;
        for (const auto* ks : levels) {
          std::vector<float> y(n_rows * sh.rows, -1.f);
          kern::matmul_with(*ks, w, x.data(), n_rows, y.data(), sh.rows, pool);
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_LE(std::fabs(y[i] - ref[i]), 1e-5 * mag[i] + 1e-30) << ks->name << " element " << i;
          // All levels run the same per-element operation sequence: identical bits.
          if (first.empty())
            first = y;
          else
            EXPECT_TRUE(same_bits(first.data(), y.data(), y.size())) << ks->name << " differs from scalar";
        }
      }
    }
  }
}

// The largest integers the kernels can meet: every weight block is -1 then +1s, so the quants are
// at the top of their range (q8_0 127, q4_0 15, q5_0 31, K-quants their maximum), and every
// activation is 1 (quant 127). Partial sums that saturate (int16 stages of the AVX2 kernels) would
// move the result far from the reference and from the scalar level.
TEST(Matmul, ExtremeQuantsDoNotSaturate) {
  ThreadPool pool(1);
  for (WeightType t : kTypes) {
    if (!kern::is_quantized(t)) continue;
    SCOPED_TRACE(name(t));
    const int64_t rows = 32, cols = 512;
    Source src{t, rows, cols, row_bytes(t, cols), {}};
    src.bytes.resize(src.stride * rows);
    std::vector<float> v(cols, 1.f);
    for (int64_t k = 0; k < cols; k += 32) v[k] = -1.f;
    for (int64_t r = 0; r < rows; ++r) quantize_row(t, v.data(), src.bytes.data() + r * src.stride, cols);
    const auto w = pack(src);
    for (const int64_t n_rows : {1, 3, 9}) {
      const std::vector<float> x(n_rows * cols, 1.f);
      std::vector<double> ref, mag;
      reference(src, effective_x(t, x, n_rows, cols), n_rows, ref, mag);
      std::vector<float> first;
      for (const auto* ks : kern::kernels_available()) {
        std::vector<float> y(n_rows * rows, -1.f);
        kern::matmul_with(*ks, w, x.data(), n_rows, y.data(), rows, pool);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_LE(std::fabs(y[i] - ref[i]), 1e-5 * mag[i] + 1e-30) << ks->name << " " << n_rows << " rows, element " << i;
        if (first.empty())
          first = y;
        else
          EXPECT_TRUE(same_bits(first.data(), y.data(), y.size())) << ks->name << " differs from scalar";
      }
    }
  }
}

// The quantized activations are within half a step of x (step = block absmax / 127).
TEST(Matmul, ActivationQuantizationLevelsAgree) {
  const int64_t cols = 512;
  auto x = make_x(1, cols, 9);
  x[4] = 127.f;  // the block absmax, so the scale is exactly 1 ...
  x[3] = 63.5f;  // ... and this is an exact tie: every level must round it alike (to even)
  for (WeightType t : {WeightType::Q8_0, WeightType::Q4_0, WeightType::Q5_0, WeightType::Q4_K, WeightType::Q5_K,
                       WeightType::Q6_K}) {
    const int64_t bc = kern::block_cols(t), nb = cols / bc;
    const int aw = kern::aux_words(t);
    std::vector<int8_t> q0(cols);
    std::vector<float> d0(nb);
    std::vector<int32_t> a0(nb * aw);
    kern::kernels_scalar().quantize(t, x.data(), cols, q0.data(), d0.data(), a0.data());
    for (int64_t k = 0; k < cols; ++k) ASSERT_LE(std::fabs(d0[k / bc] * q0[k] - x[k]), 0.5f * d0[k / bc] * 1.0001f);
    for (const auto* ks : kern::kernels_available()) {
      std::vector<int8_t> q(cols);
      std::vector<float> d(nb);
      std::vector<int32_t> a(nb * aw);
      ks->quantize(t, x.data(), cols, q.data(), d.data(), a.data());
      EXPECT_EQ(q, q0) << ks->name << " " << name(t);
      EXPECT_EQ(d, d0) << ks->name << " " << name(t);
      EXPECT_EQ(a, a0) << ks->name << " " << name(t);
    }
  }
}

// y[r][o] must not depend on how many rows are in the batch, where the row sits, or the number of
// threads: compare every batch against single-row GEMVs bit for bit.
TEST(Matmul, BatchPositionAndThreadInvariance) {
  ThreadPool p1(1), p2(2), p3(3);
  ThreadPool* pools[] = {&p1, &p2, &p3};
  for (WeightType t : kTypes) {
    SCOPED_TRACE(name(t));
    // 64 rows × 1024 columns is large enough for the activations to be quantized in parallel.
    const int64_t rows = 100, cols = 1024;
    const auto src = make_source(t, rows, cols, 3);
    const auto w = pack(src);
    const int64_t max_rows = 150;  // beyond the GEMM's 128-row cache blocks
    const auto x = make_x(max_rows, cols, 17);
    std::vector<float> single(max_rows * rows);
    for (int64_t r = 0; r < max_rows; ++r) matmul(w, x.data() + r * cols, 1, single.data() + r * rows, rows, p1);
    for (int64_t n : {1, 2, 3, 5, 8, 17, 64, 150})
      for (int64_t offset : {int64_t{0}, max_rows - n})
        for (ThreadPool* pool : pools) {
          std::vector<float> y(n * rows);
          matmul(w, x.data() + offset * cols, n, y.data(), rows, *pool);
          ASSERT_TRUE(same_bits(y.data(), single.data() + offset * rows, y.size()))
              << "n_rows " << n << " offset " << offset << " threads " << pool->size();
        }
  }
}

// A column slice packed from an offset pointer with the full row stride equals packing a copy of
// the slice; results and packed bytes agree. Also: ldy > rows leaves the gap untouched.
TEST(Matmul, ColumnSlicePackingAndStridedOutput) {
  ThreadPool pool(2);
  for (WeightType t : kTypes) {
    SCOPED_TRACE(name(t));
    const int64_t bc = kern::block_cols(t) == 256 ? 256 : 32;
    const int64_t rows = 40, cols = 4 * bc, slice0 = bc, slice_cols = 2 * bc;
    const auto src = make_source(t, rows, cols, 8);
    const size_t off = row_bytes(t, slice0), slice_bytes = row_bytes(t, slice_cols);
    std::vector<uint8_t> copy(rows * slice_bytes);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(copy.data() + r * slice_bytes, src.row(r) + off, slice_bytes);
    const auto a = pack_matrix(t, rows, slice_cols, src.bytes.data() + off, src.stride);
    const auto b = pack_matrix(t, rows, slice_cols, copy.data(), slice_bytes);
    ASSERT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(std::memcmp(a.data.get(), b.data.get(), a.bytes), 0);
    const auto x = make_x(2, slice_cols, 4);
    const int64_t ldy = rows + 5;
    std::vector<float> ya(2 * ldy, 7.f), yb(2 * ldy, 7.f);
    matmul(a, x.data(), 2, ya.data(), ldy, pool);
    matmul(b, x.data(), 2, yb.data(), ldy, pool);
    EXPECT_TRUE(same_bits(ya.data(), yb.data(), ya.size()));
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t o = rows; o < ldy; ++o) EXPECT_EQ(ya[r * ldy + o], 7.f);
    // And the slice computes the product with the sliced weights.
    Source sliced{t, rows, slice_cols, slice_bytes, copy};
    std::vector<double> ref, mag;
    reference(sliced, effective_x(t, x, 2, slice_cols), 2, ref, mag);
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t o = 0; o < rows; ++o)
        EXPECT_LE(std::fabs(ya[r * ldy + o] - ref[r * rows + o]), 1e-5 * mag[r * rows + o] + 1e-30);
  }
}

// unpack_rows gives exactly dequantize_row of the source rows, including the zero-padded last group.
TEST(Matmul, UnpackRowsEqualsDequantize) {
  for (WeightType t : kTypes) {
    SCOPED_TRACE(name(t));
    const int64_t rows = 35, cols = 512;
    const auto src = make_source(t, rows, cols, 21);
    const auto w = pack(src);
    // ceil(35 / 16) row groups; float weights are padded to 64 rows (4 groups)
    EXPECT_EQ(w.bytes, kern::group_bytes(t, cols) * (kern::is_quantized(t) ? 3 : 4));
    std::vector<float> got((rows - 13) * cols), want(cols);
    unpack_rows(w, 13, rows - 13, got.data());
    for (int64_t o = 13; o < rows; ++o) {
      dequantize_row(t, src.row(o), want.data(), cols);
      ASSERT_TRUE(same_bits(got.data() + (o - 13) * cols, want.data(), cols)) << "row " << o;
    }
    EXPECT_THROW(unpack_rows(w, 30, 6, got.data()), std::out_of_range);
  }
}

TEST(Matmul, BadShapeIsAnError) {
  std::vector<uint8_t> buf(1024);
  EXPECT_THROW(pack_matrix(WeightType::Q4_K, 2, 100, buf.data(), 100), std::invalid_argument);
  EXPECT_THROW(pack_matrix(WeightType::Q8_0, 2, 0, buf.data(), 34), std::invalid_argument);
}

// Zero activations (scale 0 blocks) and a zero matrix give exact zeros, not NaN.
TEST(Matmul, ZeroInputs) {
  ThreadPool pool(1);
  for (WeightType t : kTypes) {
    const auto src = make_source(t, 20, 256, 2);
    const auto w = pack(src);
    std::vector<float> x(256, 0.f), y(20, 1.f);
    matmul(w, x.data(), 1, y.data(), 20, pool);
    for (float v : y) EXPECT_EQ(v, 0.f) << name(t);
  }
}
