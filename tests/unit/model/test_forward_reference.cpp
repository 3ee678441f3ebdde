// forward_stage against a double-precision reference written here from the definition of a LLaMA
// block over the dequantized weights of the file (not over the packed shard), for every weight
// type, several head layouts, a prefill chunk and decode steps.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>

#include "shard/format/gguf_writer.h"
#include "shard/kernels/quant.h"
#include "tests/unit/model/synth_fixture.h"

using namespace tandem;
using namespace tandem::test;

namespace {

// A whole tensor as doubles, row-major [rows][cols].
std::vector<double> dequant(const TensorRef& t) {
  std::vector<float> row(t.cols());
  std::vector<double> out;
  out.reserve(static_cast<size_t>(t.cols() * t.rows()));
  for (int64_t r = 0; r < t.rows(); ++r) {
    dequantize_row(t.type, t.row(r), row.data(), t.cols());
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

struct RefLayer {
  std::vector<double> attn_norm, ffn_norm, wq, wk, wv, wo, wg, wu, wd;
};

struct RefModel {
  ModelConfig c;
  std::vector<double> embd, out_norm, head;
  std::vector<RefLayer> layers;
  std::vector<double> inv_freq;  // rope_dim / 2
};

// theta^(-2i / rope_dim), then the scaling of the config: linear divides every frequency by the
// factor; llama3 (Meta's apply_scaling) divides the long wavelengths, keeps the short ones and
// interpolates in between.
std::vector<double> ref_inv_freq(const ModelConfig& c) {
  std::vector<double> f(c.rope_dim / 2);
  const RopeScaling& s = c.rope_scaling;
  for (size_t i = 0; i < f.size(); ++i) {
    double x = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / c.rope_dim);
    if (s.kind == RopeScaling::Kind::Linear) x /= s.factor;
    if (s.kind == RopeScaling::Kind::Llama3) {
      const double wavelen = 2 * std::numbers::pi / x, low = s.original_ctx / s.low_freq_factor,
                   high = s.original_ctx / s.high_freq_factor;
      if (wavelen > low) {
        x /= s.factor;
      } else if (wavelen >= high) {
        const double smooth = (s.original_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        x = (1 - smooth) * x / s.factor + smooth * x;
      }
    }
    f[i] = x;
  }
  return f;
}

RefModel load_ref(const ModelFile& f) {
  RefModel m;
  m.c = f.config;
  m.inv_freq = ref_inv_freq(m.c);
  EXPECT_EQ(f.find("rope_freqs.weight"), nullptr) << "the reference does not read rope_freqs";
  auto get = [&](const std::string& n) {
    auto t = f.require(n);
    EXPECT_TRUE(t.ok()) << n;
    return dequant(**t);
  };
  m.embd = get(kTokenEmbd);
  m.out_norm = get(kOutputNorm);
  m.head = f.config.tied_output ? m.embd : get(kOutput);
  for (int l = 0; l < m.c.n_layers; ++l) {
    auto n = [&](const char* what) { return tensor_name_layer(l, what); };
    m.layers.push_back({get(n("attn_norm")), get(n("ffn_norm")), get(n("attn_q")), get(n("attn_k")), get(n("attn_v")),
                        get(n("attn_output")), get(n("ffn_gate")), get(n("ffn_up")), get(n("ffn_down"))});
  }
  return m;
}

std::vector<double> matvec(const std::vector<double>& w, const std::vector<double>& x) {
  const size_t cols = x.size(), rows = w.size() / cols;
  std::vector<double> y(rows, 0.0);
  for (size_t o = 0; o < rows; ++o)
    for (size_t i = 0; i < cols; ++i) y[o] += w[o * cols + i] * x[i];
  return y;
}

std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double s = 1.0 / std::sqrt(ss / x.size() + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w[i];
  return y;
}

// Rotates pairs (2i, 2i+1) of the first rope_dim dimensions of each head by pos * inv_freq[i].
void rope(std::vector<double>& x, int n_heads, const RefModel& m, int pos) {
  const ModelConfig& c = m.c;
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < c.rope_dim / 2; ++i) {
      const double a = pos * m.inv_freq[i];
      double& x0 = x[static_cast<size_t>(h) * c.head_dim + 2 * i];
      double& x1 = x[static_cast<size_t>(h) * c.head_dim + 2 * i + 1];
      const double r0 = x0 * std::cos(a) - x1 * std::sin(a), r1 = x0 * std::sin(a) + x1 * std::cos(a);
      x0 = r0;
      x1 = r1;
    }
}

// One sequence through the reference, one token at a time (a prefill is the same computation).
// `n_layers` < the model's: its first layers and the head (a layer-skip drafter).
struct RefSeq {
  const RefModel& m;
  int n_layers;
  std::vector<std::vector<std::vector<double>>> k, v;  // [layer][pos][kv_dim]

  explicit RefSeq(const RefModel& model, int layers = -1)
      : m(model), n_layers(layers < 0 ? model.c.n_layers : layers), k(n_layers), v(n_layers) {}

  std::vector<double> step(int32_t token) {
    const ModelConfig& c = m.c;
    const int pos = static_cast<int>(k[0].size()), hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
    std::vector<double> x(m.embd.begin() + static_cast<size_t>(token) * c.dim,
                          m.embd.begin() + static_cast<size_t>(token + 1) * c.dim);
    for (int l = 0; l < n_layers; ++l) {
      const RefLayer& w = m.layers[l];
      auto xn = rms_norm(x, w.attn_norm, c.rms_eps);
      auto q = matvec(w.wq, xn), kk = matvec(w.wk, xn), vv = matvec(w.wv, xn);
      rope(q, c.n_heads, m, pos);
      rope(kk, c.n_kv_heads, m, pos);
      k[l].push_back(kk);
      v[l].push_back(vv);
      std::vector<double> att(static_cast<size_t>(c.n_heads) * hd, 0.0);
      for (int h = 0; h < c.n_heads; ++h) {
        const int g = h / group;  // causal GQA: head h reads KV head h / group at positions 0..pos
        std::vector<double> p(pos + 1);
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= pos; ++j) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[h * hd + i] * k[l][j][g * hd + i];
          p[j] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, p[j]);
        }
        for (double& e : p) sum += (e = std::exp(e - mx));
        for (int j = 0; j <= pos; ++j)
          for (int i = 0; i < hd; ++i) att[h * hd + i] += p[j] / sum * v[l][j][g * hd + i];
      }
      auto o = matvec(w.wo, att);
      for (int i = 0; i < c.dim; ++i) x[i] += o[i];
      xn = rms_norm(x, w.ffn_norm, c.rms_eps);
      auto gate = matvec(w.wg, xn), up = matvec(w.wu, xn);
      for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];  // SwiGLU
      auto d = matvec(w.wd, gate);
      for (int i = 0; i < c.dim; ++i) x[i] += d[i];
    }
    return matvec(m.head, rms_norm(x, m.out_norm, c.rms_eps));
  }
};

double stddev(const std::vector<double>& v) {
  double s = 0, s2 = 0;
  for (double x : v) s += x;
  const double mean = s / v.size();
  for (double x : v) s2 += (x - mean) * (x - mean);
  return std::sqrt(s2 / v.size());
}

struct Tolerance {
  double max_rel;  // max over positions of max |engine - ref| / std(ref logits)
  double rms_rel;  // over positions, RMS of (engine - ref) / std(ref logits)
};

struct Compared {
  double max_rel = 0, rms_rel = 0;
  int argmax_same = 0, positions = 0;  // measured only: implied by max_rel where the top-2 gap is clear
};

// Prefill of `n_prompt` tokens (every position's logits compared), then `n_decode` greedy steps.
// `spec` may cut the model to a prefix of its layers with the head (layer-skip drafter).
Compared compare_with_reference(const std::string& path, WeightType kv_type, Tolerance tol, const ShardSpec& spec = {},
                                int n_prompt = 20, int n_decode = 6) {
  Compared r;
  auto f = open_model(path);
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
  if (!f.ok()) return r;
  const RefModel ref = load_ref(*f);
  RefSeq seq(ref, spec.layer_end);
  auto e = make_engine(*f, 1, 64, 2, kv_type, spec);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  if (!e.ok()) return r;
  double sq = 0;
  int n = 0;
  auto check = [&](std::span<const float> got, const std::vector<double>& want, int pos) {
    EXPECT_EQ(got.size(), want.size());
    const double sd = stddev(want);
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const double d = (got[i] - want[i]) / sd;
      worst = std::max(worst, std::abs(d));
      sq += d * d;
      ++n;
    }
    r.max_rel = std::max(r.max_rel, worst);
    EXPECT_LE(worst, tol.max_rel) << path << " pos " << pos;
    r.argmax_same += argmax(got) == std::max_element(want.begin(), want.end()) - want.begin();
    ++r.positions;
  };

  const auto prompt = test_tokens(n_prompt, 11, f->config.n_vocab);
  const SeqChunk pre{0, 0, prompt, true};
  auto st = (*e)->run(pre);
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  if (!st.ok()) return r;
  for (int i = 0; i < n_prompt; ++i) check((*e)->row(i), seq.step(prompt[i]), i);
  int32_t tok = argmax((*e)->row(n_prompt - 1));
  for (int s = 0; s < n_decode; ++s) {
    const int pos = n_prompt + s;
    const auto want = seq.step(tok);
    st = (*e)->run(SeqChunk{0, pos, std::span<const int32_t>(&tok, 1), false});
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    if (!st.ok()) return r;
    check((*e)->row(0), want, pos);
    tok = argmax((*e)->row(0));
  }
  r.rms_rel = std::sqrt(sq / std::max(n, 1));
  EXPECT_LE(r.rms_rel, tol.rms_rel) << path;
  return r;
}

// Tolerances relative to the spread of the logits, with the F32 KV cache (so only the weights'
// arithmetic is measured). Float weights differ from the reference only by float accumulation
// (measured max 3-6e-6). Quantized weights are compared against their own dequantized values, so
// what remains is the 8-bit quantization of every matmul's input by the kernels (per 32 elements
// for Q8_0/Q4_0, per 256 for the K-quants): about 0.5-0.7% noise per matmul output, seven
// matmuls per layer on the residual stream, hence logits off by ~1.5-2% of their spread (RMS)
// and up to ~5-9% at the worst of 512 logits × 26 positions. A wrong scale, block layout, RoPE
// pair or head mapping gives errors of order 1.
Tolerance tolerance(WeightType t) {
  switch (t) {
    case WeightType::F32:
    case WeightType::F16:
    case WeightType::BF16: return {1e-4, 2e-5};
    case WeightType::Q8_0:
    case WeightType::Q4_0: return {0.12, 0.03};
    default: return {0.15, 0.04};
  }
}

struct Shape {
  const char* what;
  int dim, layers, heads, kv_heads, ffn;
  bool k_quants;  // rows hold whole 256-element super-blocks
};

constexpr Shape kShapes[] = {
    {"GQA 8/2 heads, head_dim 32", 256, 3, 8, 2, 512, true},
    {"MHA 4/4 heads, head_dim 64", 256, 2, 4, 4, 768, true},
    {"odd 6/3 heads, head_dim 128", 768, 2, 6, 3, 256, true},
    {"GQA 6/2 heads, head_dim 48", 288, 2, 6, 2, 320, false},
};

void print_measured(const std::string& what, const Compared& c, Tolerance tol) {
  fmt::print("[ measured ] {:<40} max|d|/std {:.2e} (tol {:.0e}), rms {:.2e} (tol {:.0e}), argmax same {}/{}\n",
             what, c.max_rel, tol.max_rel, c.rms_rel, tol.rms_rel, c.argmax_same, c.positions);
}

}  // namespace

TEST(ForwardRef, EveryWeightTypeAndHeadLayoutMatchesDoubleReference) {
  for (const Shape& sh : kShapes)
    for (WeightType t : kModelWeightTypes) {
      const bool k_quant = t == WeightType::Q4_K || t == WeightType::Q6_K;
      if (k_quant && !sh.k_quants) continue;
      SCOPED_TRACE(fmt::format("{} {}", sh.what, name(t)));
      auto path = synth_model(small_synth(t, sh.dim, sh.layers, sh.heads, sh.kv_heads, sh.ffn));
      ASSERT_TRUE(path.ok()) << path.error().message;
      const auto c = compare_with_reference(*path, WeightType::F32, tolerance(t));
      print_measured(fmt::format("{} {}", sh.what, name(t)), c, tolerance(t));
      EXPECT_EQ(c.positions, 26);
    }
}

// The F16 KV cache rounds K and V to 11 significant bits: a larger but still small error.
TEST(ForwardRef, F16KvCacheStaysCloseToReference) {
  for (WeightType t : {WeightType::F32, WeightType::Q8_0}) {
    SCOPED_TRACE(name(t));
    auto path = synth_model(small_synth(t, 256, 3, 8, 2, 512));
    ASSERT_TRUE(path.ok()) << path.error().message;
    const Tolerance tol = t == WeightType::F32 ? Tolerance{5e-3, 1e-3} : tolerance(t);
    const auto c = compare_with_reference(*path, WeightType::F16, tol);
    print_measured(fmt::format("f16 KV cache, {}", name(t)), c, tol);
  }
}

// The real model (F32, head_dim 8, theta and eps from its metadata) over a real
// prompt: BOS and the start of its own golden story.
TEST(ForwardRef, Stories260KMatchesDoubleReference) {
  auto f = open_model(stories_gguf());
  ASSERT_TRUE(f.ok()) << f.error().message;
  const RefModel ref = load_ref(*f);
  auto e = make_engine(*f, 1, 128, 1, WeightType::F32);
  ASSERT_TRUE(e.ok()) << e.error().message;
  const auto golden = stories_greedy_ids();
  ASSERT_GE(golden.size(), 13u);
  std::vector<int32_t> prompt = {1};  // BOS
  prompt.insert(prompt.end(), golden.begin(), golden.begin() + 13);
  ASSERT_TRUE((*e)->run(SeqChunk{0, 0, prompt, true}).ok());
  RefSeq seq(ref);
  double worst = 0;
  int agree = 0, n = 0;
  auto check = [&](std::span<const float> got, const std::vector<double>& want) {
    double d = 0;
    for (size_t i = 0; i < want.size(); ++i) d = std::max(d, std::abs(got[i] - want[i]));
    worst = std::max(worst, d / stddev(want));
    agree += argmax(got) == std::max_element(want.begin(), want.end()) - want.begin();
    ++n;
  };
  for (size_t i = 0; i < prompt.size(); ++i) check((*e)->row(static_cast<int>(i)), seq.step(prompt[i]));
  int32_t tok = argmax((*e)->row(static_cast<int>(prompt.size()) - 1));
  for (int pos = static_cast<int>(prompt.size()); pos < 60; ++pos) {
    const auto want = seq.step(tok);
    ASSERT_TRUE((*e)->run(SeqChunk{0, pos, std::span<const int32_t>(&tok, 1), false}).ok());
    check((*e)->row(0), want);
    tok = argmax((*e)->row(0));
  }
  fmt::print("[ measured ] stories260K f32 vs reference: max|d|/std = {:.2e}, argmax agrees {}/{}\n", worst, agree, n);
  EXPECT_LE(worst, 1e-4);
  EXPECT_EQ(agree, n);
}

// RoPE and norm settings come from the file: another base, a partial rotary dimension (only the
// first half of each head rotates), another RMSNorm epsilon, linear and llama3 frequency scaling.
// Each variant matches the reference built from the same config, and differs from the plain
// model — so the setting was really applied.
TEST(ForwardRef, RopeAndNormSettingsFromMetadata) {
  auto base = synth_model(small_synth(WeightType::F32, 256, 3, 8, 2, 512));
  ASSERT_TRUE(base.ok()) << base.error().message;
  using Md = std::vector<std::pair<std::string, GgufValue>>;
  const std::pair<const char*, Md> variants[] = {
      {"theta500k", {{"llama.rope.freq_base", gguf_f32(500000.0f)}}},
      // Hidden states have RMS ~1, so a large epsilon visibly shrinks every normalised row.
      {"eps0.25", {{"llama.attention.layer_norm_rms_epsilon", gguf_f32(0.25f)}}},
      {"rope_dim16", {{"llama.rope.dimension_count", gguf_u32(16)}}},
      {"linear4", {{"llama.rope.scaling.type", gguf_str("linear")}, {"llama.rope.scaling.factor", gguf_f32(4.0f)}}},
      // original context 64: wavelengths 6..35000 fall in all three llama3 bands (16 / 64 cut-offs).
      {"llama3", {{"llama.rope.scaling.type", gguf_str("llama3")},
                  {"llama.rope.scaling.factor", gguf_f32(8.0f)},
                  {"llama.rope.scaling.low_freq_factor", gguf_f32(1.0f)},
                  {"llama.rope.scaling.high_freq_factor", gguf_f32(4.0f)},
                  {"llama.rope.scaling.original_context_length", gguf_u32(64)}}},
  };
  auto last_logits = [](const std::string& path) {
    auto f = open_model(path);
    EXPECT_TRUE(f.ok());
    auto e = make_engine(*f, 1, 32, 1, WeightType::F32);
    EXPECT_TRUE(e.ok());
    const auto prompt = test_tokens(20, 11, f->config.n_vocab);
    EXPECT_TRUE((*e)->run(SeqChunk{0, 0, prompt, false}).ok());
    return std::vector<float>((*e)->row(0).begin(), (*e)->row(0).end());
  };
  const auto plain = last_logits(*base);
  for (const auto& [tag, md] : variants) {
    SCOPED_TRACE(tag);
    auto path = with_metadata(*base, tag, md);
    ASSERT_TRUE(path.ok()) << path.error().message;
    auto f = open_model(*path);
    ASSERT_TRUE(f.ok()) << f.error().message;
    const auto c = compare_with_reference(*path, WeightType::F32, tolerance(WeightType::F32));
    print_measured(fmt::format("f32 GQA, {}", tag), c, tolerance(WeightType::F32));
    const auto v = last_logits(*path);
    double diff = 0;
    for (size_t i = 0; i < v.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(v[i] - plain[i])));
    EXPECT_GT(diff, 1e-2) << "the setting changed nothing";
  }
}

// A layer-skip self-drafter (the first k layers and the head) is the reference cut to k layers.
TEST(ForwardRef, LayerSkipDrafterMatchesTruncatedReference) {
  for (WeightType t : {WeightType::F32, WeightType::Q8_0}) {
    auto path = synth_model(small_synth(t, 256, 3, 8, 2, 512));
    ASSERT_TRUE(path.ok()) << path.error().message;
    for (int k : {1, 2}) {
      SCOPED_TRACE(fmt::format("{} first {} layers", name(t), k));
      ShardSpec spec;
      spec.layer_end = k;
      const auto c = compare_with_reference(*path, WeightType::F32, tolerance(t), spec);
      print_measured(fmt::format("{} layer-skip drafter, {} layers", name(t), k), c, tolerance(t));
      EXPECT_EQ(c.positions, 26);
    }
  }
}

// The engine's frequencies against the double-precision definitions, with per-dimension factors
// (a rope_freqs tensor) dividing them.
TEST(ForwardRef, RopeInverseFrequencies) {
  ModelConfig c;
  c.head_dim = c.rope_dim = 128;
  c.rope_theta = 500000.0f;
  for (auto kind : {RopeScaling::Kind::None, RopeScaling::Kind::Linear, RopeScaling::Kind::Llama3}) {
    c.rope_scaling = RopeScaling{kind, 8.0f, 1.0f, 4.0f, 8192};  // Llama 3.1's values
    const auto want = ref_inv_freq(c);
    const auto got = rope_inverse_frequencies(c);
    ASSERT_EQ(got.size(), 64u);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i] / want[i], 1.0, 2e-6) << "dimension pair " << i;
    std::vector<float> factors(64);
    for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.0f + 0.25f * static_cast<float>(i % 5);
    const auto scaled = rope_inverse_frequencies(c, factors);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(scaled[i] * factors[i] / want[i], 1.0, 2e-6) << i;
  }
}
