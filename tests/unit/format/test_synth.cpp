#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "shard/format/gguf_reader.h"
#include "shard/format/gguf_writer.h"
#include "shard/model/forward.h"
#include "shard/format/model_file.h"
#include "shard/kernels/quant.h"
#include "shard/format/synth.h"

using namespace tandem;

namespace {

const std::string kStoriesGguf = std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf";

std::string work(const std::string& name) { return std::string(TANDEM_TEST_WORK) + "/synth_" + name; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A small shape every weight type can hold (rows of 256 for the K-quants), 512-token vocabulary.
SynthOptions small(WeightType t, const std::string& name) {
  SynthOptions o;
  o.out = work(name);
  o.vocab_from = kStoriesGguf;
  o.type = t;
  o.dim = 256;
  o.n_layers = 3;
  o.n_heads = 4;
  o.n_kv_heads = 2;
  o.ffn_dim = 512;
  o.ctx_len = 128;
  o.seed = 7;
  o.threads = 2;
  return o;
}

std::vector<float> dequant(const TensorRef& t) {
  std::vector<float> v(static_cast<size_t>(t.cols() * t.rows()));
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.type, t.row(r), v.data() + r * t.cols(), t.cols());
  return v;
}

std::pair<double, double> mean_std(const std::vector<float>& v) {
  double s = 0, s2 = 0;
  for (float x : v) s += x;
  const double m = s / v.size();
  for (float x : v) s2 += (x - m) * (x - m);
  return {m, std::sqrt(s2 / v.size())};
}

struct RunResult {
  int code;
  std::string out;
};
RunResult run(const std::string& args) {
  const std::string log = work("cli.log");
  const int rc = std::system((std::string(TANDEM_BIN) + " " + args + " >" + log + " 2>&1").c_str());
  std::ifstream f(log);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, std::string(std::istreambuf_iterator<char>(f), {})};
}

}  // namespace

TEST(Synth, WritesEveryWeightTypeAndLoadsBack) {
  auto vocab = open_gguf(kStoriesGguf);
  ASSERT_TRUE(vocab.ok());
  for (WeightType t : kModelWeightTypes) {
    const auto o = small(t, std::string("type_") + std::string(name(t)) + ".gguf");
    auto st = write_synth_model(o);
    ASSERT_TRUE(st.ok()) << st.error().message;
    auto m = open_model(o.out);
    ASSERT_TRUE(m.ok()) << m.error().message;
    const ModelConfig& c = m->config;
    EXPECT_EQ(c.dim, 256);
    EXPECT_EQ(c.n_layers, 3);
    EXPECT_EQ(c.n_heads, 4);
    EXPECT_EQ(c.n_kv_heads, 2);
    EXPECT_EQ(c.ffn_dim, 512);
    EXPECT_EQ(c.ctx_len, 128);
    EXPECT_EQ(c.n_vocab, 512);
    EXPECT_FALSE(c.tied_output);  // untied head, like TinyLlama
    EXPECT_EQ(m->tensors.size(), 3u + 9u * 3u);
    for (const auto& tr : m->tensors) EXPECT_EQ(tr.type, tr.ne.size() == 1 ? WeightType::F32 : t) << tr.name;
    EXPECT_EQ(m->gguf->get_int("general.file_type").has_value(), true);
    // The tokenizer is copied key for key.
    for (const auto& [k, v] : vocab->metadata) {
      if (k.rfind("tokenizer.", 0) != 0) continue;
      const auto* got = m->gguf->find(k);
      ASSERT_NE(got, nullptr) << k;
      EXPECT_EQ(got->type, v.type) << k;
      EXPECT_EQ(format_value(*got, 1 << 20), format_value(v, 1 << 20)) << k;
    }
    EXPECT_EQ(m->vocab.tokens.size(), 512u);
  }
}

TEST(Synth, SameSeedGivesSameBytesWhateverTheThreadCount) {
  auto a = small(WeightType::Q4_K, "det_a.gguf");
  a.n_layers = 1;
  auto b = a;
  b.out = work("det_b.gguf");
  b.threads = 1;
  auto c = a;
  c.out = work("det_c.gguf");
  c.seed = 8;
  ASSERT_TRUE(write_synth_model(a).ok());
  ASSERT_TRUE(write_synth_model(b).ok());
  ASSERT_TRUE(write_synth_model(c).ok());
  const auto ba = read_bytes(a.out), bb = read_bytes(b.out), bc = read_bytes(c.out);
  ASSERT_GT(ba.size(), 50000u);
  EXPECT_TRUE(ba == bb);
  ASSERT_EQ(ba.size(), bc.size());  // same shape, other seed: same layout, other weights
  EXPECT_FALSE(ba == bc);
}

TEST(Synth, DraftIsTheTargetsPrefix) {
  auto o = small(WeightType::Q8_0, "pair_target.gguf");
  o.n_layers = 4;
  o.draft_out = work("pair_draft.gguf");
  o.draft_layers = 2;
  auto st = write_synth_model(o);
  ASSERT_TRUE(st.ok()) << st.error().message;
  auto target = open_model(o.out);
  auto draft = open_model(o.draft_out);
  ASSERT_TRUE(target.ok()) << target.error().message;
  ASSERT_TRUE(draft.ok()) << draft.error().message;
  EXPECT_EQ(draft->config.n_layers, 2);
  EXPECT_EQ(target->config.n_layers, 4);
  EXPECT_EQ(draft->tensors.size(), 3u + 9u * 2u);
  for (const auto& t : draft->tensors) {
    const TensorRef* u = target->find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    ASSERT_EQ(t.nbytes, u->nbytes) << t.name;
    EXPECT_EQ(std::memcmp(t.data, u->data, t.nbytes), 0) << t.name;
  }
  EXPECT_EQ(draft->vocab.tokens, target->vocab.tokens);
}

TEST(Synth, WeightScalesAreThoseOfASaneModel) {
  auto o = small(WeightType::F32, "scales.gguf");
  o.residual_scale = 0.25f;
  o.draft_layers = 1;
  ASSERT_TRUE(write_synth_model(o).ok());
  auto m = open_model(o.out);
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto stats = [&](const std::string& n) { return mean_std(dequant(*m->find(n))); };
  auto [em, es] = stats("token_embd.weight");
  EXPECT_NEAR(em, 0.0, 0.01);
  EXPECT_NEAR(es, 1.0, 0.02);
  for (const char* norm : {"blk.0.attn_norm.weight", "blk.2.ffn_norm.weight", "output_norm.weight"}) {
    auto [nm, ns] = stats(norm);
    EXPECT_NEAR(nm, 1.0, 0.01) << norm;
    EXPECT_NEAR(ns, 0.02, 0.005) << norm;
  }
  EXPECT_NEAR(stats("blk.1.attn_q.weight").second, 1.0 / 16, 0.002);  // 1/sqrt(dim)
  EXPECT_NEAR(stats("blk.1.ffn_up.weight").second, 1.0 / 16, 0.002);
  // Residual branches: full scale in the draft's layer 0, scaled by 0.25 from layer 1 on.
  EXPECT_NEAR(stats("blk.0.attn_output.weight").second, 1.0 / 16, 0.002);
  EXPECT_NEAR(stats("blk.1.attn_output.weight").second, 0.25 / 16, 0.0005);
  EXPECT_NEAR(stats("blk.0.ffn_down.weight").second, 1.0 / std::sqrt(512.0), 0.002);
  EXPECT_NEAR(stats("blk.2.ffn_down.weight").second, 0.25 / std::sqrt(512.0), 0.0005);
  // Other matrices of deep layers are not scaled.
  EXPECT_NEAR(stats("blk.2.attn_v.weight").second, 1.0 / 16, 0.002);

  auto z = small(WeightType::F32, "scale0.gguf");
  z.residual_scale = 0.0f;
  ASSERT_TRUE(write_synth_model(z).ok());
  auto mz = open_model(z.out);
  ASSERT_TRUE(mz.ok());
  for (const char* n : {"blk.1.attn_output.weight", "blk.2.ffn_down.weight"}) {
    auto v = dequant(*mz->find(n));
    EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; })) << n;
  }
}

// The head alone fixes how peaked next-token distributions are: for a final hidden state n with
// RMS 1 (what RMSNorm produces), logits = W_out (g ⊙ n) whatever the layers did.
TEST(Synth, HeadGivesPeakedNextTokenDistributions) {
  const std::string vocabs[] = {kStoriesGguf, std::string(TANDEM_VOCAB_DIR) + "/ggml-vocab-llama-spm.gguf"};
  for (const auto& vocab : vocabs) {
    SynthOptions o;
    o.out = work("peaked.gguf");
    o.vocab_from = vocab;
    o.dim = 128;
    o.n_layers = 1;
    o.n_heads = 4;
    o.n_kv_heads = 4;
    o.ffn_dim = 128;
    o.type = WeightType::Q8_0;
    auto st = write_synth_model(o);
    ASSERT_TRUE(st.ok()) << st.error().message;
    auto m = open_model(o.out);
    ASSERT_TRUE(m.ok()) << m.error().message;
    const auto head = dequant(*m->find("output.weight"));
    const auto g = dequant(*m->find("output_norm.weight"));
    const int V = m->config.n_vocab, d = m->config.dim;
    std::mt19937 rng(42);
    std::normal_distribution<float> nd;
    std::vector<double> top1;
    std::vector<float> x(d), logits(V);
    for (int trial = 0; trial < 100; ++trial) {
      double ss = 0;
      for (auto& e : x) {
        e = nd(rng);
        ss += e * e;
      }
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / d));
      for (int i = 0; i < d; ++i) x[i] *= inv * g[i];
      for (int v = 0; v < V; ++v) {
        float acc = 0;
        for (int i = 0; i < d; ++i) acc += head[size_t(v) * d + i] * x[i];
        logits[v] = acc;
      }
      const float mx = *std::max_element(logits.begin(), logits.end());
      double z = 0;
      for (float l : logits) z += std::exp(l - mx);
      top1.push_back(1.0 / z);
    }
    std::sort(top1.begin(), top1.end());
    const double p10 = top1[10], median = top1[50], p90 = top1[90];
    EXPECT_GT(median, 0.2) << vocab;
    EXPECT_LT(median, 0.9) << vocab;
    EXPECT_GT(p10, 0.05) << vocab;   // not flat over the vocabulary
    EXPECT_LT(p10, 0.5) << vocab;    // and not one-hot either
    EXPECT_GT(p90, median) << vocab;  // spread like a real LM's
    EXPECT_EQ(V, vocab == kStoriesGguf ? 512 : 32000);
  }
}

namespace {

// Logits at every position of `tokens` (one sequence, from position 0), through the real forward.
std::vector<float> all_logits(const std::string& path, const std::vector<int32_t>& tokens, ThreadPool& pool) {
  auto f = open_model(path);
  EXPECT_TRUE(f.ok()) << f.error().message;
  auto m = load_shard(*f, ShardSpec{});
  EXPECT_TRUE(m.ok()) << m.error().message;
  const ModelConfig& c = m->config;
  auto kv = make_kv_cache({c.n_layers, c.n_kv_heads, c.head_dim, 1, static_cast<int>(tokens.size()), WeightType::F32});
  EXPECT_TRUE(kv.ok());
  LocalCollectives coll;
  ForwardScratch scratch;
  std::vector<float> hidden, logits;
  const SeqChunk chunk{0, 0, tokens, true};
  auto st = forward_stage(*m, *kv, std::span<const SeqChunk>(&chunk, 1), coll, pool, scratch, hidden, &logits);
  EXPECT_TRUE(st.ok()) << st.error().message;
  return logits;
}

struct Agreement {
  double greedy = 0, sampled = 0, median_top1 = 0;
};

Agreement agreement(const std::vector<float>& target, const std::vector<float>& draft, int V) {
  const size_t n = target.size() / V;
  Agreement a;
  std::vector<double> top1;
  for (size_t r = 0; r < n; ++r) {
    const float *p = &target[r * V], *q = &draft[r * V];
    const int ip = std::max_element(p, p + V) - p, iq = std::max_element(q, q + V) - q;
    a.greedy += ip == iq;
    double zp = 0, zq = 0;
    for (int i = 0; i < V; ++i) zp += std::exp(p[i] - p[ip]), zq += std::exp(q[i] - q[iq]);
    for (int i = 0; i < V; ++i) a.sampled += std::min(std::exp(p[i] - p[ip]) / zp, std::exp(q[i] - q[iq]) / zq);
    top1.push_back(1.0 / zp);
  }
  std::sort(top1.begin(), top1.end());
  a.greedy /= n, a.sampled /= n, a.median_top1 = top1[n / 2];
  return a;
}

}  // namespace

// What the knob is for: the draft (first layer) agrees with the target at a rate the residual
// scale of the deep layers controls, and the target's next-token distributions stay peaked.
TEST(Synth, ResidualScaleControlsDraftAgreementThroughTheForwardPass) {
  auto o = small(WeightType::F32, "agree_target.gguf");
  o.n_layers = 4;
  o.draft_layers = 1;
  o.draft_out = work("agree_draft.gguf");
  std::mt19937 rng(5);
  std::vector<int32_t> tokens{1};
  while (tokens.size() < 64) tokens.push_back(3 + static_cast<int32_t>(rng() % 509));
  ThreadPool pool(2);
  std::vector<Agreement> results;
  for (float scale : {0.0f, 0.1f, 1.0f}) {
    o.residual_scale = scale;
    auto st = write_synth_model(o);
    ASSERT_TRUE(st.ok()) << st.error().message;
    results.push_back(agreement(all_logits(o.out, tokens, pool), all_logits(o.draft_out, tokens, pool), 512));
    EXPECT_GT(results.back().median_top1, 0.2) << scale;
    EXPECT_LT(results.back().median_top1, 0.9) << scale;
  }
  EXPECT_EQ(results[0].greedy, 1.0);  // deep layers are exact no-ops at scale 0
  EXPECT_NEAR(results[0].sampled, 1.0, 1e-4);
  EXPECT_LT(results[1].sampled, 0.99);
  EXPECT_GT(results[1].sampled, 0.5);
  EXPECT_LT(results[2].sampled, results[1].sampled - 0.2);
  EXPECT_LT(results[2].greedy, 0.5);
}

TEST(Synth, RejectsShapesAndInputsItCannotWrite) {
  auto expect_error = [](SynthOptions o, const char* fragment) {
    auto st = write_synth_model(o);
    ASSERT_FALSE(st.ok()) << fragment;
    EXPECT_NE(st.error().message.find(fragment), std::string::npos) << st.error().message;
    EXPECT_FALSE(std::filesystem::exists(o.out)) << fragment;
  };
  auto o = small(WeightType::Q4_K, "bad.gguf");
  std::filesystem::remove(o.out);
  o.dim = 64;
  o.n_heads = 4;
  expect_error(o, "--dim 64 is not a multiple of 256 (the q4_k block size)");
  o = small(WeightType::Q6_K, "bad.gguf");
  o.ffn_dim = 640;
  expect_error(o, "--ffn 640 is not a multiple of 256 (the q6_k block size)");
  o = small(WeightType::Q4_0, "bad.gguf");
  o.ffn_dim = 100;
  expect_error(o, "--ffn 100 is not a multiple of 32");
  o = small(WeightType::F32, "bad.gguf");
  o.n_heads = 3;
  expect_error(o, "--dim 256 must be a positive multiple of --heads 3");
  o = small(WeightType::F32, "bad.gguf");
  o.n_kv_heads = 3;
  expect_error(o, "not a multiple of the KV head count 3");
  o = small(WeightType::F32, "bad.gguf");
  o.draft_layers = 4;
  expect_error(o, "--draft-layers 4 must be between 1 and --layers 3");
  o = small(WeightType::F32, "bad.gguf");
  o.residual_scale = -1;
  expect_error(o, "--residual-scale");
  o = small(WeightType::F32, "bad.gguf");
  o.vocab_from = "/nonexistent/vocab.gguf";
  expect_error(o, "/nonexistent/vocab.gguf");
  // A GGUF without a tokenizer cannot be a vocabulary source.
  const std::string bare = work("bare.gguf");
  ASSERT_TRUE(write_gguf(bare, {{"general.architecture", gguf_str("llama")}}, {}).ok());
  o = small(WeightType::F32, "bad.gguf");
  o.vocab_from = bare;
  expect_error(o, "has no tokenizer.ggml.tokens");
}

TEST(SynthCli, WritesAModelThatInfoReadsBack) {
  const std::string out = work("cli.gguf"), draft = work("cli_draft.gguf");
  auto r = run("model synth --out " + out + " --draft " + draft +
               " --type q4_0 --dim 256 --layers 3 --heads 8 --kv-heads 2 --ffn 768 --ctx 512 --seed 3 "
               "--residual-scale 0.5 --draft-layers 1 --vocab-from " + kStoriesGguf);
  ASSERT_EQ(r.code, 0) << r.out;
  auto info = run("model info " + out + " --json --ctx 100 --seqs 3");
  ASSERT_EQ(info.code, 0) << info.out;
  auto j = nlohmann::json::parse(info.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << info.out;
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["config"]["dim"], 256);
  EXPECT_EQ(j["config"]["n_layers"], 3);
  EXPECT_EQ(j["config"]["n_kv_heads"], 2);
  EXPECT_EQ(j["config"]["ctx_len"], 512);
  EXPECT_EQ(j["tensors"].size(), 3u + 9u * 3u);
  EXPECT_EQ(j["metadata"]["tandem.synth.seed"]["value"], 3);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"]["value"]["length"], 512);
  uint64_t sum = 0;
  for (const auto& t : j["tensors"]) sum += t["bytes"].get<uint64_t>();
  EXPECT_EQ(j["weight_bytes"], sum);
  EXPECT_EQ(j["bytes_by_type"]["q4_0"]["tensors"], 3 + 7 * 3 - 1);  // all matrices: embd, head, 7 per layer
  EXPECT_EQ(j["bytes_by_type"]["f32"]["tensors"], 1 + 2 * 3);
  // 2 (K and V) x 3 layers x 100 positions x kv_dim (2 heads x 32) x 2 bytes x 3 sequences.
  EXPECT_EQ(j["kv_cache"]["bytes"], 2 * 3 * 100 * 64 * 2 * 3);
  EXPECT_EQ(j["total_bytes"], sum + 2 * 3 * 100 * 64 * 2 * 3);

  auto dinfo = run("model info " + draft);
  ASSERT_EQ(dinfo.code, 0) << dinfo.out;
  EXPECT_NE(dinfo.out.find("layers 1"), std::string::npos) << dinfo.out;
  EXPECT_NE(dinfo.out.find("KV cache"), std::string::npos) << dinfo.out;

  auto bad = run("model synth --out " + work("cli_bad.gguf") + " --type q5_1 --vocab-from " + kStoriesGguf);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("--type 'q5_1' is not one of f32, f16, bf16, q8_0, q4_0, q5_0, q4_k, q5_k, q6_k"),
            std::string::npos)
      << bad.out;
  auto help = run("model synth --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--residual-scale"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--draft-layers"), std::string::npos) << help.out;
}
