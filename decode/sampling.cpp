#include "decode/sampling.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>

#include "shard/kernels/cpu_features.h"

// glibc's vector expf (libmvec, <= 4 ulp): the softmax over a 32000-token row is the largest cost
// of sampling, and a scalar expf per token alone would spend most of the per-row budget.
extern "C" {
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512);
__attribute__((target("avx2"))) __m256 _ZGVdN8v_expf(__m256);
}

namespace tandem {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kTiny = std::numeric_limits<float>::min();  // smallest normal float

// ---------------------------------------------------------------------------------------------
// Row kernels. Sampling is a handful of passes over the vocabulary per token (several rows per
// step with speculation), so each pass runs as AVX-512 or AVX2 where the CPU has it
// (cpu_features(), capped by $TANDEM_KERNELS), with a scalar fallback. NaN logits are ignored
// everywhere: they never win a max and get weight 0.

// GCC 12 reports the intrinsics' own deliberately undefined pass-through operands as
// uninitialised; the kernels below have no uninitialised values of their own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

enum class Isa { kScalar, kAvx2, kAvx512 };

Isa isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f) return Isa::kAvx512;
  if (f.avx2 && f.fma) return Isa::kAvx2;
  return Isa::kScalar;
}

__attribute__((target("avx512f"))) float row_max_avx512(const float* x, size_t n) {
  __m512 a0 = _mm512_set1_ps(-kInf), a1 = a0;
  size_t i = 0;
  // max_ps returns its second operand when either is NaN: the accumulator never becomes NaN.
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_max_ps(_mm512_loadu_ps(x + i), a0);
    a1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), a1);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    a0 = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-kInf), k, x + i), a0);
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
}

__attribute__((target("avx2"))) float row_max_avx2(const float* x, size_t n) {
  __m256 a0 = _mm256_set1_ps(-kInf), a1 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_max_ps(_mm256_loadu_ps(x + i), a0);
    a1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), a1);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(a0, a1));
  float m = -kInf;
  for (float v : lanes) m = v > m ? v : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

float row_max(std::span<const float> x) {
  switch (isa()) {
    case Isa::kAvx512: return row_max_avx512(x.data(), x.size());
    case Isa::kAvx2: return row_max_avx2(x.data(), x.size());
    case Isa::kScalar: break;
  }
  float m = -kInf;
  for (float v : x) m = v > m ? v : m;
  return m;
}

// w[i] = exp((x[i] - m) * inv_t), ids[i] = i when given; returns the sum (double) and counts the
// zero weights (so the caller compacts only when there are any). Weights below FLT_MIN (a token
// more than ~87 nats below the best at temperature 1) and NaN become 0: such a weight, once
// normalised, could round to a probability of exactly 0 and break the support's meaning.
struct ExpSum {
  double sum = 0;
  size_t zeros = 0;
};

__attribute__((target("avx512f"))) ExpSum exp_weights_avx512(const float* x, size_t n, float m,
                                                              float inv_t, float* w, int32_t* ids) {
  const __m512 vm = _mm512_set1_ps(m), vt = _mm512_set1_ps(inv_t), tiny = _mm512_set1_ps(kTiny);
  const __m512i step = _mm512_set1_epi32(16);
  __m512i vid = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  size_t zeros = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-kInf), k, x + i);
    __m512 e = _ZGVeN16v_expf(_mm512_mul_ps(_mm512_sub_ps(v, vm), vt));
    const __mmask16 pos = _mm512_cmp_ps_mask(e, tiny, _CMP_GE_OQ);  // false for NaN
    e = _mm512_maskz_mov_ps(pos, e);
    zeros += static_cast<size_t>(std::popcount(static_cast<unsigned>(k & ~pos)));
    if (w) _mm512_mask_storeu_ps(w + i, k, e);
    if (ids) _mm512_mask_storeu_epi32(ids + i, k, vid);
    vid = _mm512_add_epi32(vid, step);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(
        s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  return {_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)), zeros};
}

__attribute__((target("avx2,fma"))) ExpSum exp_weights_avx2(const float* x, size_t n, float m,
                                                             float inv_t, float* w, int32_t* ids) {
  const __m256 vm = _mm256_set1_ps(m), vt = _mm256_set1_ps(inv_t), tiny = _mm256_set1_ps(kTiny);
  const __m256i step = _mm256_set1_epi32(8);
  __m256i vid = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  size_t zeros = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = _ZGVdN8v_expf(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vt));
    const __m256 pos = _mm256_cmp_ps(e, tiny, _CMP_GE_OQ);
    e = _mm256_and_ps(e, pos);
    zeros += static_cast<size_t>(8 - std::popcount(static_cast<unsigned>(_mm256_movemask_ps(pos))));
    if (w) _mm256_storeu_ps(w + i, e);
    if (ids) _mm256_storeu_si256(reinterpret_cast<__m256i*>(ids + i), vid);
    vid = _mm256_add_epi32(vid, step);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  ExpSum r{lanes[0] + lanes[1] + lanes[2] + lanes[3], zeros};
  for (; i < n; ++i) {
    float e = std::exp((x[i] - m) * inv_t);
    if (!(e >= kTiny)) {
      e = 0.0f;
      ++r.zeros;
    }
    if (w) w[i] = e;
    if (ids) ids[i] = static_cast<int32_t>(i);
    r.sum += e;
  }
  return r;
}

ExpSum exp_weights(std::span<const float> x, float m, float inv_t, float* w, int32_t* ids) {
  switch (isa()) {
    case Isa::kAvx512: return exp_weights_avx512(x.data(), x.size(), m, inv_t, w, ids);
    case Isa::kAvx2: return exp_weights_avx2(x.data(), x.size(), m, inv_t, w, ids);
    case Isa::kScalar: break;
  }
  ExpSum r;
  for (size_t i = 0; i < x.size(); ++i) {
    float e = std::exp((x[i] - m) * inv_t);
    if (!(e >= kTiny)) {
      e = 0.0f;
      ++r.zeros;
    }
    if (w) w[i] = e;
    if (ids) ids[i] = static_cast<int32_t>(i);
    r.sum += e;
  }
  return r;
}

// First index i >= start with x[i] > t (n if none).
__attribute__((target("avx512f"))) size_t find_greater_avx512(const float* x, size_t n, size_t i,
                                                               float t) {
  const __m512 vt = _mm512_set1_ps(t);
  for (; i + 16 <= n; i += 16) {
    const __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), vt, _CMP_GT_OQ);
    if (k) return i + static_cast<size_t>(std::countr_zero(static_cast<unsigned>(k)));
  }
  for (; i < n; ++i)
    if (x[i] > t) return i;
  return n;
}

__attribute__((target("avx2"))) size_t find_greater_avx2(const float* x, size_t n, size_t i, float t) {
  const __m256 vt = _mm256_set1_ps(t);
  for (; i + 8 <= n; i += 8) {
    const int k = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vt, _CMP_GT_OQ));
    if (k) return i + static_cast<size_t>(std::countr_zero(static_cast<unsigned>(k)));
  }
  for (; i < n; ++i)
    if (x[i] > t) return i;
  return n;
}

size_t find_greater(std::span<const float> x, size_t start, float t) {
  switch (isa()) {
    case Isa::kAvx512: return find_greater_avx512(x.data(), x.size(), start, t);
    case Isa::kAvx2: return find_greater_avx2(x.data(), x.size(), start, t);
    case Isa::kScalar: break;
  }
  for (size_t i = start; i < x.size(); ++i)
    if (x[i] > t) return i;
  return x.size();
}

__attribute__((target("avx512f"))) double sum_avx512(const float* x, size_t n) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s1 = _mm512_add_pd(
        s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

double sum(std::span<const float> x) {
  if (x.size() >= 64 && isa() == Isa::kAvx512) return sum_avx512(x.data(), x.size());
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains: the adds are latency-bound otherwise
  const float* p = x.data();
  const size_t n = x.size(), n4 = n / 4 * 4;
  for (size_t i = 0; i < n4; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (size_t i = n4; i < n; ++i) s0 += p[i];
  return (s0 + s1) + (s2 + s3);
}

// Keeps, in place and in order, the entries ranked no later than the cut (key_c, id_c), where an
// entry's key is its weight's bit pattern (weights are >= 0): key > key_c, or key == key_c and
// id <= id_c. Compress-in-register and a full-width store: in place is safe because the write
// position never passes the block just loaded. Returns the new size.
__attribute__((target("avx512f"))) size_t keep_ranked_avx512(int32_t* ids, float* w, size_t n,
                                                              uint32_t key_c, int32_t id_c) {
  const __m512i vk = _mm512_set1_epi32(static_cast<int32_t>(key_c)), vi = _mm512_set1_epi32(id_c);
  size_t out = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512i key = _mm512_maskz_loadu_epi32(live, w + i);
    const __m512i id = _mm512_maskz_loadu_epi32(live, ids + i);
    const __mmask16 keep =
        live & (_mm512_cmpgt_epu32_mask(key, vk) |
                (_mm512_cmpeq_epi32_mask(key, vk) & _mm512_cmple_epi32_mask(id, vi)));
    const int kept = std::popcount(static_cast<unsigned>(keep));
    const auto dst = static_cast<__mmask16>((1u << kept) - 1);
    _mm512_mask_storeu_epi32(ids + out, dst, _mm512_maskz_compress_epi32(keep, id));
    _mm512_mask_storeu_epi32(w + out, dst, _mm512_maskz_compress_epi32(keep, key));
    out += static_cast<size_t>(kept);
  }
  return out;
}

#pragma GCC diagnostic pop

// ---------------------------------------------------------------------------------------------
// Selection.

// Ranking everywhere: larger value first, ties to the lower id, a strict total order (ids are
// unique), so every cut below has exactly one answer. Values are compared through an
// order-preserving unsigned key, which lets the large cuts run as radix selections.

// Order-preserving key of a logit; NaN ranks as -inf.
inline uint32_t logit_key(float v) {
  const uint32_t b = std::bit_cast<uint32_t>(std::isnan(v) ? -kInf : v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Positive weights order like their bit patterns.
inline uint32_t weight_key(float w) { return std::bit_cast<uint32_t>(w); }

// The cut of a ranking: entry `pos` (positions ascend with ids) with key `key`; an entry is kept
// when it ranks no later: key > cut.key, or key == cut.key and position <= cut.pos.
struct Cut {
  uint32_t key;
  size_t pos;
};

// From the heaviest bucket down, the one where the cumulative weight reaches `need`; `need` becomes
// what is still needed inside it. When rounding leaves `need` just out of reach, the lightest
// non-empty bucket is picked and everything is kept.
size_t pick_bucket(std::span<const double> mass, double& need) {
  size_t pick = 0;
  double above = 0;
  bool reached = false;
  for (size_t b = mass.size(); b-- > 0 && !reached;) {
    if (mass[b] == 0) continue;
    pick = b;
    if (above + mass[b] >= need) {
      reached = true;
    } else {
      above += mass[b];
    }
  }
  if (!reached) above -= mass[pick];  // ran out: `pick` is the lightest, kept whole
  need -= above;
  return pick;
}

// The entry that ends the shortest prefix, in rank order, whose weight reaches `need` (need > 0,
// every weight > 0, n > 0, keys <= max_key). Radix select: a histogram of weight per bucket of
// the top 11 key bits finds the bucket where the cumulative weight crosses `need`; only that
// bucket's entries go on to the finer levels (11, then 10 bits), after which one key value is left
// and ties go by position. O(n), no comparison sort: a flat distribution keeps most of the
// vocabulary in the nucleus, where sorting would cost O(V log V). With unit weights and need = k
// it is the top-k cut.
template <class KeyFn, class WeightFn>
Cut radix_cut(size_t n, KeyFn key, WeightFn weight, uint32_t max_key, double need) {
  // Level 0 over everything, into four interleaved histograms so that runs of equal buckets do
  // not serialise on one memory cell.
  constexpr int kShift0 = 21;
  const size_t nb = (max_key >> kShift0) + 1;
  std::vector<double> hist(4 * nb, 0.0);
  std::vector<uint32_t> count(4 * nb, 0);  // entries per bucket: sizes the gather below
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t j = 0; j < 4; ++j) {
      const size_t b = j * nb + (key(i + j) >> kShift0);
      hist[b] += weight(i + j);
      ++count[b];
    }
  }
  for (; i < n; ++i) {
    hist[key(i) >> kShift0] += weight(i);
    ++count[key(i) >> kShift0];
  }
  for (size_t b = 0; b < nb; ++b) {
    hist[b] += (hist[nb + b] + hist[2 * nb + b]) + hist[3 * nb + b];
    count[b] += count[nb + b] + count[2 * nb + b] + count[3 * nb + b];
  }
  const size_t top = pick_bucket(std::span<const double>(hist.data(), nb), need);

  struct Entry {
    uint32_t key;
    uint32_t pos;
    double w;
  };
  // Gather the bucket's entries without a branch per entry (in a flat distribution the bucket
  // is a sizeable, randomly placed fraction of the row): write always, advance only on a match.
  std::vector<Entry> e(count[top] + 1);
  size_t m = 0;
  for (i = 0; i < n; ++i) {
    const uint32_t k = key(i);
    e[m] = {k, static_cast<uint32_t>(i), static_cast<double>(weight(i))};
    m += (k >> kShift0) == top ? 1 : 0;
  }
  e.resize(m);
  struct Level {
    int shift;
    uint32_t mask;
  };
  std::array<double, 0x800> mass;
  for (const Level lv : {Level{10, 0x7FF}, Level{0, 0x3FF}}) {
    const std::span<double> m(mass.data(), lv.mask + 1);
    std::fill(m.begin(), m.end(), 0.0);
    for (const Entry& x : e) m[(x.key >> lv.shift) & lv.mask] += x.w;
    const size_t pick = pick_bucket(m, need);
    std::erase_if(e, [&](const Entry& x) { return ((x.key >> lv.shift) & lv.mask) != pick; });
  }
  // One key value left: positions ascend, which is rank order among equals.
  for (const Entry& x : e) {
    need -= x.w;
    if (need <= 0) return {x.key, x.pos};
  }
  return {e.back().key, e.back().pos};
}

// The k best logits (NaN ranks as -inf), as positions, any order; k <= 256 < logits.size(). A heap
// whose front is the worst kept token: later ids lose ties, so only a strictly greater logit can
// enter, and the vector scan skips everything else (a handful of entries over a whole row).
void small_top_k(std::span<const float> logits, size_t k, std::vector<std::pair<float, int32_t>>& heap) {
  auto worse = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  heap.resize(k);
  for (size_t i = 0; i < k; ++i)
    heap[i] = {std::isnan(logits[i]) ? -kInf : logits[i], static_cast<int32_t>(i)};
  std::make_heap(heap.begin(), heap.end(), worse);
  for (size_t i = find_greater(logits, k, heap.front().first); i < logits.size();
       i = find_greater(logits, i + 1, heap.front().first)) {
    std::pop_heap(heap.begin(), heap.end(), worse);
    heap.back() = {logits[i], static_cast<int32_t>(i)};
    std::push_heap(heap.begin(), heap.end(), worse);
  }
}

// Keeps the entries of `d` ranked no later than (key_c, id_c) (see keep_ranked_avx512).
void keep_ranked(SparseDist& d, uint32_t key_c, int32_t id_c) {
  size_t n = 0;
  if (isa() == Isa::kAvx512) {
    n = keep_ranked_avx512(d.ids.data(), d.probs.data(), d.size(), key_c, id_c);
  } else {
    for (size_t i = 0; i < d.size(); ++i) {
      const int32_t id = d.ids[i];
      const float w = d.probs[i];
      const uint32_t key = weight_key(w);
      d.ids[n] = id;  // branch-free compaction: write always, advance only when kept
      d.probs[n] = w;
      n += (key > key_c) | ((key == key_c) & (id <= id_c));
    }
  }
  d.ids.resize(n);
  d.probs.resize(n);
}

void one_hot(SparseDist& out, int32_t id) {
  out.ids.assign(1, id);
  out.probs.assign(1, 1.0f);
}

}  // namespace

Status validate(const SamplingParams& p) {
  // Written as !(in range) so that NaN is rejected too.
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return make_error("sampling: temperature must be a finite number >= 0 (got {})", p.temperature);
  if (p.top_k < 0) return make_error("sampling: top_k must be >= 0, 0 = off (got {})", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    return make_error("sampling: top_p must be in (0, 1], 1 = off (got {})", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f))
    return make_error("sampling: min_p must be in [0, 1), 0 = off (got {})", p.min_p);
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    return make_error("sampling: repetition_penalty must be a finite number > 0, 1 = off (got {})",
                      p.repetition_penalty);
  if (!std::isfinite(p.presence_penalty))
    return make_error("sampling: presence_penalty must be finite (got {})", p.presence_penalty);
  if (!std::isfinite(p.frequency_penalty))
    return make_error("sampling: frequency_penalty must be finite (got {})", p.frequency_penalty);
  if (p.penalty_last_n < -1)
    return make_error("sampling: penalty_last_n must be >= -1, -1 = whole history (got {})",
                      p.penalty_last_n);
  return ok_status();
}

// Not "== 0": a negative or NaN temperature (which validate() rejects) must not reach the
// softmax, where it would turn the ranking upside down or poison every weight.
bool is_greedy(const SamplingParams& params) { return !(params.temperature > 0.0f); }

float SparseDist::prob(int32_t id) const {
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  return (it != ids.end() && *it == id) ? probs[static_cast<size_t>(it - ids.begin())] : 0.0f;
}

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) return -1;
  const float m = row_max(logits);
  if (m == -kInf) {  // only -inf and NaN: the first -inf, or 0 when everything is NaN
    for (size_t i = 0; i < logits.size(); ++i)
      if (logits[i] == -kInf) return static_cast<int32_t>(i);
    return 0;
  }
  // The first index holding the maximum is the lowest id among ties.
  const size_t i = find_greater(logits, 0, std::nextafter(m, -kInf));
  return static_cast<int32_t>(i);
}

void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                     const SamplingParams& params) {
  const float rep = params.repetition_penalty;
  const float pres = params.presence_penalty;
  const float freq = params.frequency_penalty;
  if ((rep == 1.0f && pres == 0.0f && freq == 0.0f) || params.penalty_last_n == 0) return;
  size_t n = history.size();
  if (params.penalty_last_n > 0) n = std::min(n, static_cast<size_t>(params.penalty_last_n));
  // The window is small (tens of tokens): sorting a copy counts occurrences without a table the
  // size of the vocabulary.
  std::vector<int32_t> window(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  std::sort(window.begin(), window.end());
  const auto vocab = static_cast<int64_t>(logits.size());
  for (size_t i = 0; i < window.size();) {
    size_t j = i;
    while (j < window.size() && window[j] == window[i]) ++j;
    const int32_t id = window[i];
    const auto count = static_cast<float>(j - i);
    i = j;
    if (id < 0 || id >= vocab) continue;
    float& l = logits[static_cast<size_t>(id)];
    if (rep != 1.0f) l = l > 0.0f ? l / rep : l * rep;
    l -= count * freq + pres;
  }
}

void sampling_distribution(std::span<const float> logits, const SamplingParams& params,
                           SparseDist& out) {
  out.ids.clear();
  out.probs.clear();
  if (logits.empty()) return;
  if (is_greedy(params)) return one_hot(out, argmax(logits));

  const size_t vocab = logits.size();
  const float m = row_max(logits);
  if (m == -kInf) return one_hot(out, argmax(logits));  // no finite logit: nothing to weigh
  if (m == kInf) {
    // exp(inf - inf) is undefined: the limit puts all mass, evenly, on the +inf logits.
    for (size_t i = 0; i < vocab; ++i)
      if (logits[i] == m) out.ids.push_back(static_cast<int32_t>(i));
    out.probs.assign(out.ids.size(), 1.0f / static_cast<float>(out.ids.size()));
    return;
  }
  const float inv_t = 1.0f / params.temperature;
  if (!std::isfinite(inv_t)) return one_hot(out, argmax(logits));  // a subnormal temperature

  // 1. Temperature softmax (unnormalised weights; the best token weighs 1) over the top-k. The
  //    top-k cut is made on the logits, before any exp: same ranking, and only k exponentials.
  const size_t k = params.top_k > 0 ? static_cast<size_t>(params.top_k) : vocab;
  if (k < vocab) {
    // Gather the kept logits in id order into `out`, then weigh them in place.
    if (k <= 256) {
      std::vector<std::pair<float, int32_t>> heap;
      small_top_k(logits, k, heap);
      std::sort(heap.begin(), heap.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
      for (const auto& [v, id] : heap) {
        out.ids.push_back(id);
        out.probs.push_back(v);
      }
    } else {
      const Cut c = radix_cut(
          vocab, [&](size_t i) { return logit_key(logits[i]); }, [](size_t) { return 1.0; },
          0xFFFFFFFFu, static_cast<double>(k));
      out.ids.reserve(k);
      out.probs.reserve(k);
      for (size_t i = 0; i < vocab; ++i) {
        const uint32_t key = logit_key(logits[i]);
        if ((key > c.key) | ((key == c.key) & (i <= c.pos))) {
          out.ids.push_back(static_cast<int32_t>(i));
          out.probs.push_back(logits[i]);
        }
      }
    }
  } else {
    out.ids.resize(vocab);
    out.probs.assign(logits.begin(), logits.end());
  }
  // Weights in place (the best token weighs exactly 1; -inf, NaN and underflow weigh 0 and go).
  const ExpSum e = exp_weights(out.probs, m, inv_t, out.probs.data(), k < vocab ? nullptr : out.ids.data());
  const double total = e.sum;
  constexpr int32_t kAnyId = std::numeric_limits<int32_t>::max();
  if (e.zeros > 0) keep_ranked(out, weight_key(0.0f) + 1, kAnyId);  // w > 0

  // 2. Top-p over what top-k kept.
  if (params.top_p < 1.0f && out.size() > 1) {
    const float* w = out.probs.data();
    const Cut c = radix_cut(
        out.size(), [w](size_t i) { return weight_key(w[i]); }, [w](size_t i) { return double{w[i]}; },
        weight_key(row_max(out.probs)), static_cast<double>(params.top_p) * total);
    const int32_t cut_id = out.ids[c.pos];  // ids ascend with positions
    keep_ranked(out, c.key, cut_id);
  }

  // 3. Min-p: relative to the most likely survivor, so renormalisation does not change it.
  if (params.min_p > 0.0f && out.size() > 1) {
    const float floor = params.min_p * row_max(out.probs);
    keep_ranked(out, weight_key(floor), kAnyId);  // w >= floor
  }

  const auto inv = static_cast<float>(1.0 / sum(out.probs));
  for (float& w : out.probs) w *= inv;
}

int32_t sample(const SparseDist& dist, double u) {
  if (dist.empty()) return -1;
  // Scale u by the actual total instead of assuming 1, so float rounding in the stored
  // probabilities cannot shift mass onto the last token.
  const double target = u * sum(dist.probs);
  const size_t n = dist.size();
  double acc = 0;
  size_t i = 0;
  // Whole blocks first (their sums are independent, so they pipeline), then token by token
  // inside the block where the CDF crosses the target.
  constexpr size_t kBlock = 16;
  for (; i + kBlock <= n; i += kBlock) {
    const double block = sum(std::span<const float>(dist.probs).subspan(i, kBlock));
    if (target < acc + block) break;
    acc += block;
  }
  for (; i < n; ++i) {
    acc += dist.probs[i];
    if (target < acc) return dist.ids[i];
  }
  return dist.ids.back();
}

int32_t dist_argmax(const SparseDist& dist) {
  if (dist.empty()) return -1;
  size_t best = 0;
  for (size_t i = 1; i < dist.size(); ++i)
    if (dist.probs[i] > dist.probs[best]) best = i;  // ids ascend: strict > keeps the lowest id
  return dist.ids[best];
}

float logprob(std::span<const float> logits, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= logits.size()) return -kInf;
  const float x = logits[static_cast<size_t>(id)];
  if (std::isnan(x) || x == -kInf) return -kInf;
  const float m = row_max(logits);
  if (m == kInf) {  // the limit: all mass shared evenly by the +inf logits
    if (x != kInf) return -kInf;
    const auto n_inf = std::count(logits.begin(), logits.end(), kInf);
    return -std::log(static_cast<float>(n_inf));
  }
  const double z = exp_weights(logits, m, 1.0f, nullptr, nullptr).sum;
  return static_cast<float>(static_cast<double>(x - m) - std::log(z));
}

}  // namespace tandem
