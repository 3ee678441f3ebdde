// forward_stage against a double-precision reference written here from the definition of each
// family's block (llama; qwen2 with q/k/v biases; qwen3 with per-head q/k RMSNorm before RoPE; the
// qwens with NeoX RoPE) over the dequantized weights of the file (not over the packed shard), for
// every weight type, several head layouts, tied and untied heads, a prefill chunk and decode steps.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>

#include "shard/format/file_type.h"
#include "shard/format/gguf_writer.h"
#include "shard/format/model_quantize.h"
#include "shard/kernels/quant.h"
#include "tests/unit/format/llama_cpp_layout.h"
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
  std::vector<double> bq, bk, bv;  // empty: no bias
  std::vector<double> q_norm, k_norm;  // empty: no q/k norm
};

// What the reference leaves out or gets wrong on purpose, to show a test would catch it.
struct RefFault {
  bool drop_bias = false, drop_qk_norm = false, wrong_rope_pairs = false;
};

struct RefModel {
  ModelConfig c;
  std::vector<double> embd, out_norm, head;
  std::vector<RefLayer> layers;
  std::vector<double> inv_freq;  // rope_dim / 2
  bool neox = false;             // rotate (i, i + rope_dim/2) instead of (2i, 2i+1)
  RefFault fault;
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

RefModel load_ref(const ModelFile& f, RefFault fault = {}) {
  RefModel m;
  m.c = f.config;
  m.inv_freq = ref_inv_freq(m.c);
  m.fault = fault;
  // llama.cpp's llama_model_rope_type: NORM for llama, NEOX for qwen2 and qwen3.
  m.neox = (m.c.arch == "qwen2" || m.c.arch == "qwen3") != fault.wrong_rope_pairs;
  EXPECT_EQ(f.find("rope_freqs.weight"), nullptr) << "the reference does not read rope_freqs";
  auto get = [&](const std::string& n) {
    auto t = f.require(n);
    EXPECT_TRUE(t.ok()) << n;
    return dequant(**t);
  };
  m.embd = get(kTokenEmbd);
  m.out_norm = get(kOutputNorm);
  m.head = f.config.tied_output ? m.embd : get(kOutput);
  auto get_if = [&](const std::string& n) { return f.find(n) ? get(n) : std::vector<double>{}; };
  for (int l = 0; l < m.c.n_layers; ++l) {
    auto n = [&](const char* what) { return tensor_name_layer(l, what); };
    auto b = [&](const char* what) { return tensor_bias_layer(l, what); };
    m.layers.push_back({get(n("attn_norm")), get(n("ffn_norm")), get(n("attn_q")), get(n("attn_k")), get(n("attn_v")),
                        get(n("attn_output")), get(n("ffn_gate")), get(n("ffn_up")), get(n("ffn_down")),
                        get_if(b("attn_q")), get_if(b("attn_k")), get_if(b("attn_v")), get_if(n("attn_q_norm")),
                        get_if(n("attn_k_norm"))});
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

// Rotates pair i of the first rope_dim dimensions of each head by pos * inv_freq[i]: dimensions
// (2i, 2i+1) (llama.cpp's NORM), or (i, i + rope_dim/2) (NEOX: ggml's rotate_pairs with an
// offset of n_dims/2).
void rope(std::vector<double>& x, int n_heads, const RefModel& m, int pos) {
  const ModelConfig& c = m.c;
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < c.rope_dim / 2; ++i) {
      const double a = pos * m.inv_freq[i];
      const int d0 = m.neox ? i : 2 * i, d1 = m.neox ? i + c.rope_dim / 2 : 2 * i + 1;
      double& x0 = x[static_cast<size_t>(h) * c.head_dim + d0];
      double& x1 = x[static_cast<size_t>(h) * c.head_dim + d1];
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
      auto add = [&](std::vector<double>& y, const std::vector<double>& bias) {
        if (m.fault.drop_bias) return;
        for (size_t i = 0; i < bias.size(); ++i) y[i] += bias[i];
      };
      add(q, w.bq);
      add(kk, w.bk);
      add(vv, w.bv);
      // Qwen3: each head of q and of k RMS-normalised over head_dim, scaled per dimension.
      auto head_norm = [&](std::vector<double>& y, int n_heads, const std::vector<double>& weight) {
        if (weight.empty() || m.fault.drop_qk_norm) return;
        for (int h = 0; h < n_heads; ++h) {
          std::vector<double> head(y.begin() + h * hd, y.begin() + (h + 1) * hd);
          head = rms_norm(head, weight, c.rms_eps);
          std::copy(head.begin(), head.end(), y.begin() + h * hd);
        }
      };
      head_norm(q, c.n_heads, w.q_norm);
      head_norm(kk, c.n_kv_heads, w.k_norm);
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
                                int n_prompt = 20, int n_decode = 6, RefFault fault = {}) {
  Compared r;
  auto f = open_model(path);
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
  if (!f.ok()) return r;
  const RefModel ref = load_ref(*f, fault);
  const bool faulty = fault.drop_bias || fault.drop_qk_norm || fault.wrong_rope_pairs;
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
    if (!faulty) EXPECT_LE(worst, tol.max_rel) << path << " pos " << pos;
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
  if (!faulty) EXPECT_LE(r.rms_rel, tol.rms_rel) << path;
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
    case WeightType::Q4_0:
    case WeightType::Q5_0: return {0.12, 0.03};
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
      const bool k_quant = info(t).block_elems == 256;
      if (k_quant && !sh.k_quants) continue;
      SCOPED_TRACE(fmt::format("{} {}", sh.what, name(t)));
      auto path = synth_model(small_synth(t, sh.dim, sh.layers, sh.heads, sh.kv_heads, sh.ffn));
      ASSERT_TRUE(path.ok()) << path.error().message;
      const auto c = compare_with_reference(*path, WeightType::F32, tolerance(t));
      print_measured(fmt::format("{} {}", sh.what, name(t)), c, tolerance(t));
      EXPECT_EQ(c.positions, 26);
    }
}

// A Q5_K_M file laid out as llama-quantize writes one: q5_K matrices, q6_K for the head and for
// attn_v / ffn_down of the layers llama.cpp's use_more_bits picks (the first and last eighth and
// every third in between), f32 norms, general.file_type 17. It is named Q5_K_M with its tensors
// counted per type, and the mixed model runs against the double reference like a uniform one.
TEST(ForwardRef, Q5_K_MMixMatchesDoubleReference) {
  auto src = synth_model(small_synth(WeightType::F32, 256, 4, 8, 2, 512));
  ASSERT_TRUE(src.ok()) << src.error().message;
  auto in = open_model(*src);
  ASSERT_TRUE(in.ok()) << in.error().message;
  const int n = in->config.n_layers;
  auto more_bits = [n](int i) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; };
  auto type_of = [&](const TensorRef& t) {
    if (t.ne.size() < 2) return WeightType::F32;
    if (t.name == "output.weight") return WeightType::Q6_K;
    for (int i = 0; i < n; ++i)
      if (more_bits(i) && (t.name == tensor_name_layer(i, "attn_v") || t.name == tensor_name_layer(i, "ffn_down")))
        return WeightType::Q6_K;
    return WeightType::Q5_K;
  };
  GgufMetadata md = in->gguf->metadata;
  for (auto& [k, v] : md)
    if (k == "general.file_type") v = gguf_u32(17);
  std::vector<TensorToWrite> tensors;
  for (const auto& t : in->tensors) {
    if (in->is_tied_alias(t)) continue;
    const WeightType dst = type_of(t);
    tensors.push_back({t.name, dst, t.ne, [&t, dst](uint8_t* out) {
                         std::vector<float> row(t.cols());
                         for (int64_t r = 0; r < static_cast<int64_t>(t.nbytes / t.row_bytes()); ++r) {
                           dequantize_row(t.type, t.row(r), row.data(), t.cols());
                           quantize_row(dst, row.data(), out + r * row_bytes(dst, t.cols()), t.cols());
                         }
                       }});
  }
  const std::string path = std::string(TANDEM_TEST_WORK) + "/ref_q5_k_m_mix.gguf";
  ASSERT_TRUE(write_gguf(path, md, tensors).ok());
  auto m = open_model(path);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const FileType ft = file_type_of(*m);
  EXPECT_EQ(ft.name, "Q5_K_M");
  EXPECT_EQ(ft.description, "Q5_K - Medium");
  EXPECT_FALSE(ft.guessed);
  // Layers 2 and 3 of 4 get more bits: 2 × (attn_v, ffn_down) + output = 5 q6_K; token_embd and
  // the other 23 matrices q5_K; 2 norms per layer and output_norm f32.
  EXPECT_EQ(tensor_type_counts(*m), (std::map<std::string, int>{{"f32", 9}, {"q5_K", 25}, {"q6_K", 5}}));
  EXPECT_EQ(m->find(tensor_name_layer(1, "attn_v"))->type, WeightType::Q5_K);
  EXPECT_EQ(m->find(tensor_name_layer(2, "attn_v"))->type, WeightType::Q6_K);
  const auto c = compare_with_reference(path, WeightType::F32, tolerance(WeightType::Q5_K));
  print_measured("Q5_K_M mix (q5_K + q6_K)", c, tolerance(WeightType::Q5_K));
  EXPECT_EQ(c.positions, 26);
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

// ---------------------------------------------------------------------------------------------
// The qwen families: qwen2 (q/k/v biases), qwen3 (q/k norms; head_dim decoupled from dim / heads),
// both with NeoX RoPE, every weight type, GQA and MHA, untied and tied heads.

namespace {

struct FamilyShape {
  const char* arch;
  const char* what;
  int dim, layers, heads, kv_heads, head_dim, ffn;  // head_dim 0: dim / heads
  bool k_quants;
};

constexpr FamilyShape kFamilyShapes[] = {
    {"qwen2", "GQA 8/2 heads of 32", 256, 3, 8, 2, 0, 512, true},
    {"qwen2", "GQA 6/2 heads of 48", 288, 2, 6, 2, 0, 320, false},
    {"qwen3", "GQA 8/2 heads of 64 (q 512 wide, dim 256)", 256, 3, 8, 2, 64, 512, true},
    {"qwen3", "MHA 4/4 heads of 128 (q 512 wide, dim 256)", 256, 2, 4, 4, 128, 768, true},
};

SynthOptions family_synth(const FamilyShape& sh, WeightType t, bool tied) {
  SynthOptions o = small_synth(t, sh.dim, sh.layers, sh.heads, sh.kv_heads, sh.ffn, 1, sh.arch);
  o.head_dim = sh.head_dim;
  o.tied = tied;
  return o;
}

}  // namespace

TEST(ForwardRef, QwenFamiliesEveryWeightTypeMatchDoubleReference) {
  for (const FamilyShape& sh : kFamilyShapes)
    for (bool tied : {false, true}) {
      if (tied && &sh != &kFamilyShapes[0] && &sh != &kFamilyShapes[2]) continue;  // tied: one shape per family
      for (WeightType t : kModelWeightTypes) {
        const bool k_quant = info(t).block_elems == 256;
        if (k_quant && !sh.k_quants) continue;
        const std::string what = fmt::format("{} {}{} {}", sh.arch, sh.what, tied ? " tied" : "", name(t));
        SCOPED_TRACE(what);
        auto path = synth_model(family_synth(sh, t, tied));
        ASSERT_TRUE(path.ok()) << path.error().message;
        auto f = open_model(*path);
        ASSERT_TRUE(f.ok()) << f.error().message;
        EXPECT_EQ(f->config.arch, sh.arch);
        EXPECT_EQ(f->config.tied_output, tied);
        EXPECT_EQ(f->find(tensor_bias_layer(0, "attn_k")) != nullptr, std::string(sh.arch) == "qwen2");
        EXPECT_EQ(f->find(tensor_name_layer(0, "attn_k_norm")) != nullptr, std::string(sh.arch) == "qwen3");
        const auto c = compare_with_reference(*path, WeightType::F32, tolerance(t));
        print_measured(what, c, tolerance(t));
        EXPECT_EQ(c.positions, 26);
      }
    }
}

// The pieces really are applied (and the comparison above would see them missing): a reference
// without the biases, without the q/k norms, or pairing RoPE dimensions as llama does is far
// outside the tolerance the right one meets.
TEST(ForwardRef, QwenPiecesAreAppliedNegativeControl) {
  struct Case {
    const FamilyShape& shape;
    RefFault fault;
    const char* what;
  };
  const Case cases[] = {
      {kFamilyShapes[0], {.drop_bias = true}, "qwen2 without q/k/v biases"},
      {kFamilyShapes[0], {.wrong_rope_pairs = true}, "qwen2 with llama's RoPE pairs"},
      {kFamilyShapes[2], {.drop_qk_norm = true}, "qwen3 without q/k norms"},
      {kFamilyShapes[2], {.wrong_rope_pairs = true}, "qwen3 with llama's RoPE pairs"},
  };
  for (const Case& k : cases)
    for (WeightType t : {WeightType::F32, WeightType::Q4_0}) {
      SCOPED_TRACE(fmt::format("{} {}", k.what, name(t)));
      auto path = synth_model(family_synth(k.shape, t, false));
      ASSERT_TRUE(path.ok()) << path.error().message;
      const auto c = compare_with_reference(*path, WeightType::F32, tolerance(t), {}, 20, 6, k.fault);
      print_measured(fmt::format("fault: {} {}", k.what, name(t)), c, tolerance(t));
      // Measured: the faults move logits by 0.9-3.6 std at worst, 0.2-0.85 RMS, against 0.12 / 0.03.
      EXPECT_GT(c.max_rel, 0.5) << "the faulty reference agrees: the piece is not exercised";
      EXPECT_GT(c.rms_rel, 4 * tolerance(t).rms_rel) << "the faulty reference agrees: the piece is not exercised";
    }
}

// A llama model does not become a qwen one by its RoPE alone: the llama reference with NeoX pairs
// is also far off (the RoPE style comes from the architecture, not from the tensors).
TEST(ForwardRef, LlamaKeepsAdjacentRopePairs) {
  auto path = synth_model(small_synth(WeightType::F32, 256, 3, 8, 2, 512));
  ASSERT_TRUE(path.ok()) << path.error().message;
  const auto right = compare_with_reference(*path, WeightType::F32, tolerance(WeightType::F32));
  const auto wrong =
      compare_with_reference(*path, WeightType::F32, tolerance(WeightType::F32), {}, 20, 6, {.wrong_rope_pairs = true});
  print_measured("llama with NeoX pairs (fault)", wrong, tolerance(WeightType::F32));
  EXPECT_LE(right.max_rel, tolerance(WeightType::F32).max_rel);
  EXPECT_GT(wrong.max_rel, 0.1);
}

// NeoX RoPE with a partial rotary dimension, another base and the F16 KV cache, and the
// layer-skip drafter of a qwen3 model.
TEST(ForwardRef, QwenRopeSettingsKvCacheAndLayerSkip) {
  for (const FamilyShape* sh : {&kFamilyShapes[0], &kFamilyShapes[2]}) {
    auto base = synth_model(family_synth(*sh, WeightType::F32, false));
    ASSERT_TRUE(base.ok()) << base.error().message;
    const std::string p = std::string(sh->arch) + ".";
    auto half = with_metadata(*base, std::string(sh->arch) + "_rope_half",
                              {{p + "rope.dimension_count", gguf_u32(sh->head_dim ? sh->head_dim / 2 : 16)},
                               {p + "rope.freq_base", gguf_f32(1000000.0f)}});
    ASSERT_TRUE(half.ok()) << half.error().message;
    const auto c = compare_with_reference(*half, WeightType::F32, tolerance(WeightType::F32));
    print_measured(fmt::format("{} partial NeoX rotary, theta 1e6", sh->arch), c, tolerance(WeightType::F32));
    const Tolerance f16{5e-3, 1e-3};
    const auto k = compare_with_reference(*base, WeightType::F16, f16);
    print_measured(fmt::format("{} f16 KV cache", sh->arch), k, f16);
    ShardSpec spec;
    spec.layer_end = 1;
    const auto d = compare_with_reference(*base, WeightType::F32, tolerance(WeightType::F32), spec);
    print_measured(fmt::format("{} layer-skip drafter, 1 layer", sh->arch), d, tolerance(WeightType::F32));
  }
}

// Files laid out as llama.cpp's converter writes Qwen2 (tied, biases, theta 1e6, eps 1e-6, a
// 50257-token gpt2 vocabulary) and Qwen3 (key_length 32 on a 64-wide model, q/k norms, untied),
// F16 matrices: the engine equals the reference built from the file's names and keys.
TEST(ForwardRef, LlamaCppConverterLayoutsMatchDoubleReference) {
  LlamaCppLayout q2;
  LlamaCppLayout q3;
  q3.arch = "qwen3";
  q3.head_dim = 32;
  q3.tied = false;
  for (const LlamaCppLayout& o : {q2, q3}) {
    SCOPED_TRACE(o.arch);
    auto path = write_llama_cpp_layout(o);
    ASSERT_TRUE(path.ok()) << path.error().message;
    const auto c = compare_with_reference(*path, WeightType::F32, tolerance(WeightType::F16));
    print_measured(fmt::format("llama.cpp converter layout, {}", o.arch), c, tolerance(WeightType::F16));
    EXPECT_EQ(c.positions, 26);
  }
}
