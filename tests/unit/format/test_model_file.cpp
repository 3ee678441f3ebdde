#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>

#include "shard/format/gguf_writer.h"
#include "shard/format/model_file.h"
#include "shard/format/model_quantize.h"
#include "shard/kernels/quant.h"
#include "shard/format/synth.h"
#include "tests/unit/test_paths.h"

using namespace tandem;
namespace fs = std::filesystem;

namespace {

const std::string kModels = std::string(TANDEM_TESTDATA) + "/models";
const std::string kStoriesGguf = kModels + "/stories260K.gguf";
const std::string kStoriesBin = kModels + "/stories260K.bin";

std::string work(const std::string& name) { return std::string(TANDEM_TEST_WORK) + "/model_file_" + name; }

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

// Re-writes a GGUF after `edit` changed its metadata and tensor list (tensor bytes are copied).
std::string rewrite(const std::string& src, const std::string& name,
                    const std::function<void(Metadata&, std::vector<TensorToWrite>&)>& edit) {
  auto f = open_gguf(src);
  EXPECT_TRUE(f.ok());
  Metadata md = f->metadata;
  std::vector<TensorToWrite> ts;
  for (const auto& t : f->tensors) {
    const uint8_t* data = f->tensor_data(t);
    const size_t n = t.nbytes;
    auto map = f->map;  // keeps `data` alive
    ts.push_back({t.name, t.type, t.ne, [data, n, map](uint8_t* dst) { std::memcpy(dst, data, n); }});
  }
  edit(md, ts);
  const std::string out = work(name);
  auto st = write_gguf(out, md, ts);
  EXPECT_TRUE(st.ok()) << st.error().message;
  return out;
}

void set_key(Metadata& md, const std::string& key, GgufValue v) {
  for (auto& [k, old] : md)
    if (k == key) {
      old = std::move(v);
      return;
    }
  md.emplace_back(key, std::move(v));
}
void drop_key(Metadata& md, const std::string& key) {
  std::erase_if(md, [&](const auto& kv) { return kv.first == key; });
}

std::vector<float> dequant(const TensorRef& t) {
  int64_t rows = 1;
  for (size_t i = 1; i < t.ne.size(); ++i) rows *= t.ne[i];
  std::vector<float> v(static_cast<size_t>(t.cols() * rows));
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t.type, t.row(r), v.data() + r * t.cols(), t.cols());
  return v;
}

struct RunResult {
  int code;
  std::string out;
};
RunResult run(const std::string& args) {
  static int n = 0;
  const std::string log = work(tandem::testing::per_test_name("cli") + "_" + std::to_string(n++) + ".log");
  const int rc = std::system((std::string(TANDEM_BIN) + " " + args + " >" + log + " 2>&1").c_str());
  std::ifstream f(log);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, std::string(std::istreambuf_iterator<char>(f), {})};
}

void expect_error(const Result<ModelFile>& m, const std::string& fragment, const std::string& path) {
  ASSERT_FALSE(m.ok()) << fragment;
  EXPECT_NE(m.error().message.find(fragment), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find(path), std::string::npos) << m.error().message;
}

}  // namespace

// --- real files -----------------------------------------------------------------------------------

TEST(ModelFile, GgufAndLlama2cCheckpointsAreTheSameModel) {
  for (const char* stem : {"stories260K", "llama2xs-tinystories-280K"}) {
    auto g = open_model(kModels + "/" + stem + ".gguf");
    auto b = open_model(kModels + "/" + stem + ".bin");
    ASSERT_TRUE(g.ok()) << g.error().message;
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_EQ(g->format, "gguf");
    EXPECT_EQ(b->format, "llama2c");
    const ModelConfig &cg = g->config, &cb = b->config;
    EXPECT_EQ(cg.arch, cb.arch);
    EXPECT_EQ(cg.n_vocab, cb.n_vocab);
    EXPECT_EQ(cg.dim, cb.dim);
    EXPECT_EQ(cg.n_layers, cb.n_layers);
    EXPECT_EQ(cg.n_heads, cb.n_heads);
    EXPECT_EQ(cg.n_kv_heads, cb.n_kv_heads);
    EXPECT_EQ(cg.head_dim, cb.head_dim);
    EXPECT_EQ(cg.ffn_dim, cb.ffn_dim);
    EXPECT_EQ(cg.rope_dim, cb.rope_dim);
    EXPECT_EQ(cg.rope_theta, cb.rope_theta);
    EXPECT_EQ(cg.rms_eps, cb.rms_eps);
    EXPECT_EQ(cg.rope_scaling.kind, cb.rope_scaling.kind);
    // Differences by construction: llama.cpp's converter wrote ctx 2048 for stories260K (the .bin
    // says 512) and stored the shared classifier as its own output.weight.
    if (std::string(stem) == "stories260K") {
      EXPECT_EQ(cg.ctx_len, 2048);
      EXPECT_EQ(cb.ctx_len, 512);
    } else {
      EXPECT_EQ(cg.ctx_len, cb.ctx_len);
    }
    EXPECT_FALSE(cg.tied_output);
    EXPECT_TRUE(cb.tied_output);

    ASSERT_EQ(g->tensors.size(), b->tensors.size()) << stem;
    for (const auto& tg : g->tensors) {
      const TensorRef* tb = b->find(tg.name);
      ASSERT_NE(tb, nullptr) << stem << " " << tg.name;
      EXPECT_EQ(tg.type, tb->type) << tg.name;
      EXPECT_EQ(tg.ne, tb->ne) << tg.name;
      ASSERT_EQ(tg.nbytes, tb->nbytes) << tg.name;
      EXPECT_EQ(std::memcmp(tg.data, tb->data, tg.nbytes), 0) << stem << " " << tg.name << " differs";
    }
    EXPECT_EQ(g->vocab.tokens.size(), b->vocab.tokens.size());
    EXPECT_EQ(b->weight_bytes() + uint64_t{512} * 64 * 4, g->weight_bytes());  // the tied head is stored once
  }
}

TEST(ModelFile, Stories260KConfigFromGguf) {
  auto m = open_model(kStoriesGguf);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.kv_dim(), 32);
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::None);
  ASSERT_TRUE(m->gguf.has_value());
  EXPECT_EQ(m->map->size, fs::file_size(kStoriesGguf));
  auto r = m->require("blk.4.ffn_down.weight", 172, 64);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto wrong = m->require("blk.4.ffn_down.weight", 64, 172);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("has shape [172, 64], the model config implies [64, 172]"), std::string::npos)
      << wrong.error().message;
}

TEST(ModelFile, FindsTheLlama2cTokenizerBesideTheCheckpoint) {
  const fs::path dir = work("tokdir");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bin = (dir / "model.bin").string();
  fs::copy_file(kStoriesBin, bin);
  auto none = open_model(bin);
  expect_error(none, "needs its tokenizer", bin);
  EXPECT_NE(none.error().message.find("tok512.bin"), std::string::npos) << none.error().message;

  auto explicit_tok = open_model(bin, kModels + "/tok512.bin");
  ASSERT_TRUE(explicit_tok.ok()) << explicit_tok.error().message;
  EXPECT_EQ(explicit_tok->vocab.tokens.size(), 512u);

  fs::copy_file(kModels + "/tok512.bin", dir / "tokenizer.bin");
  auto generic = open_model(bin);
  ASSERT_TRUE(generic.ok()) << generic.error().message;
  fs::copy_file(kModels + "/tok512.bin", dir / "tok512.bin");
  auto specific = open_model(bin);
  ASSERT_TRUE(specific.ok()) << specific.error().message;

  auto missing = open_model(bin, (dir / "nope.bin").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("nope.bin"), std::string::npos) << missing.error().message;
}

TEST(ModelFile, GgufWithoutOutputWeightHasATiedHead) {
  const auto path = rewrite(kStoriesGguf, "tied.gguf", [](Metadata&, std::vector<TensorToWrite>& ts) {
    std::erase_if(ts, [](const TensorToWrite& t) { return t.name == "output.weight"; });
  });
  auto m = open_model(path);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_TRUE(m->config.tied_output);
  const TensorRef* head = m->find("output.weight");
  const TensorRef* emb = m->find("token_embd.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->data, emb->data);
  EXPECT_EQ(head->ne, emb->ne);
  auto full = open_model(kStoriesGguf);
  EXPECT_EQ(m->weight_bytes() + head->nbytes, full->weight_bytes());
}

// --- malformed models -----------------------------------------------------------------------------

TEST(ModelFile, InconsistentModelsGiveClearErrors) {
  struct Case {
    const char* name;
    std::function<void(Metadata&, std::vector<TensorToWrite>&)> edit;
    const char* fragment;
  };
  auto drop_tensor = [](const char* n) {
    return [n](Metadata&, std::vector<TensorToWrite>& ts) {
      std::erase_if(ts, [n](const TensorToWrite& t) { return t.name == n; });
    };
  };
  auto reshape = [](const char* n, std::vector<int64_t> ne) {
    return [n, ne](Metadata&, std::vector<TensorToWrite>& ts) {
      for (auto& t : ts)
        if (t.name == n) {
          t.ne = ne;
          t.fill = [](uint8_t*) {};
        }
    };
  };
  auto shrink_vocab = [](Metadata& md, std::vector<TensorToWrite>&) {
    for (auto& [k, v] : md)
      if (k == "tokenizer.ggml.tokens" || k == "tokenizer.ggml.scores" || k == "tokenizer.ggml.token_type")
        std::get<GgufArray>(v.v).items.resize(500);
  };
  const Case cases[] = {
      {"missing.gguf", drop_tensor("blk.3.ffn_up.weight"), "missing tensor 'blk.3.ffn_up.weight'"},
      {"missing_norm.gguf", drop_tensor("output_norm.weight"), "missing tensor 'output_norm.weight'"},
      {"shape.gguf", reshape("blk.0.attn_k.weight", {64, 64}),
       "tensor 'blk.0.attn_k.weight' has shape [64, 64], the model config implies [64, 32]"},
      {"shape3d.gguf", reshape("blk.1.ffn_norm.weight", {64, 1, 2}), "tensor 'blk.1.ffn_norm.weight' has shape [64, 1, 2]"},
      {"vocab.gguf", shrink_vocab, "vocabulary size mismatch"},
      {"vocab_key.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) { set_key(md, "llama.vocab_size", gguf_u32(600)); },
       "vocabulary size mismatch"},
      {"arch.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) { set_key(md, "general.architecture", gguf_str("gpt2")); },
       "architecture 'gpt2' is not supported"},
      {"noarch.gguf", [](Metadata& md, std::vector<TensorToWrite>&) { drop_key(md, "general.architecture"); },
       "missing general.architecture"},
      {"nodim.gguf", [](Metadata& md, std::vector<TensorToWrite>&) { drop_key(md, "llama.embedding_length"); },
       "missing llama.embedding_length"},
      {"kvheads.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) { set_key(md, "llama.attention.head_count_kv", gguf_u32(3)); },
       "not a multiple of the KV head count 3"},
      {"heads.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) { set_key(md, "llama.attention.head_count", gguf_u32(7)); },
       "embedding_length 64 is not divisible by head_count 7"},
      {"negdim.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) { set_key(md, "llama.block_count", gguf_i32(-5)); },
       "llama.block_count = -5 is out of range"},
      {"strdim.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) { set_key(md, "llama.block_count", gguf_str("5")); },
       "llama.block_count is not an integer"},
      {"eps.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) {
         set_key(md, "llama.attention.layer_norm_rms_epsilon", gguf_f32(0.0f));
       },
       "RMSNorm epsilon 0 must be in (0, 1)"},
      {"notok.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) {
         std::erase_if(md, [](const auto& kv) { return kv.first.rfind("tokenizer.", 0) == 0; });
       },
       ""},  // no tokenizer at all: whatever vocab_from_gguf says, as long as it names the file
      {"rope.gguf",
       [](Metadata& md, std::vector<TensorToWrite>&) { set_key(md, "llama.rope.scaling.type", gguf_str("yarn")); },
       "rope scaling type 'yarn' is not supported"},
  };
  for (const auto& c : cases) {
    const auto path = rewrite(kStoriesGguf, c.name, c.edit);
    auto m = open_model(path);
    expect_error(m, c.fragment, path);
  }
}

// --- config keys ----------------------------------------------------------------------------------

TEST(ModelConfig, ReadsOptionalAndScalingKeys) {
  GgufFile f;
  f.path = "mem.gguf";
  f.metadata = {
      {"general.architecture", gguf_str("mistral")},
      {"mistral.context_length", gguf_u32(4096)},
      {"mistral.embedding_length", gguf_u32(512)},
      {"mistral.block_count", gguf_u32(2)},
      {"mistral.feed_forward_length", gguf_u32(1024)},
      {"mistral.attention.head_count", gguf_u32(8)},
      {"mistral.vocab_size", gguf_u32(1000)},
  };
  auto c = config_from_gguf(f);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->arch, "mistral");
  EXPECT_EQ(c->n_kv_heads, 8);  // defaults to head_count
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->rope_dim, 64);
  EXPECT_FLOAT_EQ(c->rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(c->rms_eps, 1e-5f);
  EXPECT_EQ(c->n_vocab, 1000);
  EXPECT_TRUE(c->tied_output);

  f.metadata.emplace_back("mistral.attention.key_length", gguf_u32(128));
  f.metadata.emplace_back("mistral.rope.dimension_count", gguf_u32(32));
  f.metadata.emplace_back("mistral.rope.freq_base", gguf_f32(500000.0f));
  f.metadata.emplace_back("mistral.rope.scaling.type", gguf_str("linear"));
  f.metadata.emplace_back("mistral.rope.scaling.factor", gguf_f32(4.0f));
  c = config_from_gguf(f);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->q_dim(), 1024);
  EXPECT_EQ(c->rope_dim, 32);
  EXPECT_FLOAT_EQ(c->rope_theta, 500000.0f);
  EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::Linear);
  EXPECT_FLOAT_EQ(c->rope_scaling.factor, 4.0f);

  GgufFile g;
  g.path = "l3.gguf";
  g.metadata = {
      {"general.architecture", gguf_str("llama")},
      {"llama.context_length", gguf_u32(131072)},
      {"llama.embedding_length", gguf_u32(256)},
      {"llama.block_count", gguf_u32(1)},
      {"llama.feed_forward_length", gguf_u32(512)},
      {"llama.attention.head_count", gguf_u32(4)},
      {"llama.attention.head_count_kv", gguf_u32(2)},
      {"tokenizer.ggml.tokens", gguf_str_array({"a", "b", "c"})},
      {"llama.rope.scaling.factor", gguf_f32(8.0f)},
      {"llama.rope.scaling.low_freq_factor", gguf_f32(1.0f)},
      {"llama.rope.scaling.high_freq_factor", gguf_f32(4.0f)},
      {"llama.rope.scaling.original_context_length", gguf_u32(8192)},
  };
  auto l3 = config_from_gguf(g);
  ASSERT_TRUE(l3.ok()) << l3.error().message;
  EXPECT_EQ(l3->n_vocab, 3);  // from the token array
  EXPECT_EQ(l3->rope_scaling.kind, RopeScaling::Kind::Llama3);
  EXPECT_FLOAT_EQ(l3->rope_scaling.factor, 8.0f);
  EXPECT_EQ(l3->rope_scaling.original_ctx, 8192);

  g.metadata.emplace_back("llama.rope.scaling.type", gguf_str("llama3"));
  g.metadata[10].second = gguf_f32(0.5f);  // high_freq_factor below low_freq_factor
  auto bad = config_from_gguf(g);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("low_freq_factor < high_freq_factor"), std::string::npos) << bad.error().message;
}

TEST(ModelConfig, ValidateRejectsInconsistentShapes) {
  ModelConfig c;
  c.n_vocab = 100, c.dim = 64, c.n_layers = 2, c.n_heads = 8, c.n_kv_heads = 4, c.head_dim = 8, c.ffn_dim = 128,
  c.ctx_len = 64, c.rope_dim = 8;
  ASSERT_TRUE(validate_config(c, "x").ok());
  auto expect = [](ModelConfig m, const char* fragment) {
    auto st = validate_config(m, "cfg.gguf");
    ASSERT_FALSE(st.ok()) << fragment;
    EXPECT_NE(st.error().message.find(fragment), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().message.find("cfg.gguf"), std::string::npos);
  };
  auto m = c;
  m.n_kv_heads = 3;
  expect(m, "not a multiple of the KV head count");
  m = c;
  m.rope_dim = 16;
  expect(m, "rope dimension = 16 is out of range");
  m = c;
  m.n_vocab = 0;
  expect(m, "vocabulary size = 0");
  m = c;
  m.head_dim = 7, m.rope_dim = 6;
  expect(m, "must be even");
  m = c;
  m.rope_theta = -1;
  expect(m, "rope frequency base");
  m = c;
  m.n_layers = 5000;
  expect(m, "block count = 5000 is out of range");
}

// --- conversion -----------------------------------------------------------------------------------

TEST(ModelQuantize, Llama2cToGgufKeepsWeightsAndTokenizer) {
  auto in = open_model(kStoriesBin);
  ASSERT_TRUE(in.ok()) << in.error().message;
  for (WeightType t : {WeightType::F32, WeightType::F16}) {
    const std::string out = work(std::string("stories_") + std::string(name(t)) + ".gguf");
    auto st = quantize_model(*in, out, t, 2);
    ASSERT_TRUE(st.ok()) << st.error().message;
    auto m = open_model(out);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(m->format, "gguf");
    EXPECT_EQ(m->config.ctx_len, 512);
    EXPECT_EQ(m->config.dim, 64);
    EXPECT_EQ(m->config.name, "stories260K");
    EXPECT_TRUE(m->config.tied_output);  // kept tied: output.weight is not duplicated
    EXPECT_EQ(m->gguf->find_tensor("output.weight"), nullptr);
    EXPECT_EQ(m->gguf->get_int("general.file_type"), static_cast<int64_t>(llama_file_type(t)));
    // The tokenizer written from tok512.bin reads back as the same vocabulary.
    EXPECT_EQ(m->vocab.tokens, in->vocab.tokens);
    EXPECT_EQ(m->vocab.scores, in->vocab.scores);
    EXPECT_EQ(m->vocab.types, in->vocab.types);
    EXPECT_EQ(m->vocab.bos, in->vocab.bos);
    EXPECT_EQ(m->vocab.eos, in->vocab.eos);
    EXPECT_EQ(m->vocab.add_bos, in->vocab.add_bos);
    for (const auto& src : in->tensors) {
      const TensorRef* dst = m->find(src.name);
      ASSERT_NE(dst, nullptr) << src.name;
      EXPECT_EQ(dst->type, src.ne.size() == 1 ? WeightType::F32 : t) << src.name;
      EXPECT_EQ(dst->ne, src.ne);
      const auto a = dequant(src), b = dequant(*dst);
      ASSERT_EQ(a.size(), b.size());
      size_t bad = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        const bool rounded = t == WeightType::F16 && src.ne.size() > 1;  // norms stay f32
        const float expect = rounded ? fp16_to_fp32(fp32_to_fp16(a[i])) : a[i];
        bad += b[i] != expect;
      }
      EXPECT_EQ(bad, 0u) << src.name;
    }
  }
}

TEST(ModelQuantize, EveryTypeMatchesRowWiseQuantization) {
  SynthOptions o;
  o.out = work("quant_src.gguf");
  o.vocab_from = kStoriesGguf;
  o.dim = 256, o.n_layers = 2, o.n_heads = 4, o.n_kv_heads = 2, o.ffn_dim = 512, o.ctx_len = 64;
  ASSERT_TRUE(write_synth_model(o).ok());
  auto in = open_model(o.out);
  ASSERT_TRUE(in.ok()) << in.error().message;
  for (WeightType t : kModelWeightTypes) {
    const std::string out = work(std::string("quant_") + std::string(name(t)) + ".gguf");
    auto st = quantize_model(*in, out, t, 2);
    ASSERT_TRUE(st.ok()) << st.error().message;
    auto m = open_model(out);
    ASSERT_TRUE(m.ok()) << m.error().message;
    // Metadata is kept key for key, except the file type.
    ASSERT_EQ(m->gguf->metadata.size(), in->gguf->metadata.size());
    for (size_t i = 0; i < in->gguf->metadata.size(); ++i) {
      const auto& [k, v] = in->gguf->metadata[i];
      EXPECT_EQ(m->gguf->metadata[i].first, k);
      if (k != "general.file_type") {
        EXPECT_EQ(format_value(m->gguf->metadata[i].second), format_value(v)) << k;
      }
    }
    EXPECT_EQ(m->gguf->get_int("general.file_type"), static_cast<int64_t>(llama_file_type(t)));
    for (const auto& src : in->tensors) {
      const TensorRef* dst = m->find(src.name);
      ASSERT_NE(dst, nullptr);
      const WeightType want = src.ne.size() == 1 ? WeightType::F32 : t;
      ASSERT_EQ(dst->type, want) << src.name;
      std::vector<uint8_t> expect(dst->nbytes);
      const auto x = dequant(src);
      for (int64_t r = 0; r < src.rows(); ++r)
        quantize_row(want, x.data() + r * src.cols(), expect.data() + r * dst->row_bytes(), src.cols());
      EXPECT_EQ(std::memcmp(expect.data(), dst->data, dst->nbytes), 0) << name(t) << " " << src.name;
    }
  }
  // Same type in and out: an exact copy.
  const std::string q = work("quant_q4_0.gguf"), again = work("quant_q4_0_again.gguf");
  auto q4 = open_model(q);
  ASSERT_TRUE(q4.ok());
  ASSERT_TRUE(quantize_model(*q4, again, WeightType::Q4_0).ok());
  auto m2 = open_model(again);
  ASSERT_TRUE(m2.ok());
  for (const auto& t : q4->tensors)
    EXPECT_EQ(std::memcmp(t.data, m2->find(t.name)->data, t.nbytes), 0) << t.name;
}

// Like llama.cpp, rows that cannot hold whole blocks of the requested type fall back per tensor
// to the nearest type whose blocks fit; the rest of the model gets the requested type.
TEST(ModelQuantize, RowsThatCannotHoldWholeBlocksFallBackPerTensor) {
  auto in = open_model(kStoriesGguf);
  ASSERT_TRUE(in.ok());
  const std::string out = work("stories_q4_k.gguf");
  auto st = quantize_model(*in, out, WeightType::Q4_K);  // every row is 64 or 172 long
  ASSERT_TRUE(st.ok()) << st.error().message;
  auto m = open_model(out);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->find("token_embd.weight")->type, WeightType::Q4_0);
  EXPECT_EQ(m->find("blk.0.ffn_down.weight")->type, WeightType::F16);
  EXPECT_EQ(m->find("blk.0.attn_norm.weight")->type, WeightType::F32);
  ASSERT_TRUE(quantize_model(*in, out, WeightType::Q8_0).ok());
  auto q8 = open_model(out);
  ASSERT_TRUE(q8.ok());
  EXPECT_EQ(q8->find("blk.0.attn_q.weight")->type, WeightType::Q8_0);
  EXPECT_EQ(q8->find("blk.0.ffn_down.weight")->type, WeightType::F16);  // rows of 172
}

// --- command line ---------------------------------------------------------------------------------

TEST(ModelInfoCli, DescribesBothFormats) {
  auto j_run = run("model info " + kStoriesBin + " --json --kv-type f32");
  ASSERT_EQ(j_run.code, 0) << j_run.out;
  auto j = nlohmann::json::parse(j_run.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << j_run.out;
  EXPECT_EQ(j["format"], "llama2c");
  EXPECT_EQ(j["config"]["ctx_len"], 512);
  EXPECT_EQ(j["config"]["tied_output"], true);
  EXPECT_EQ(j["tokenizer"]["n_tokens"], 512);
  // 2 x 5 layers x 512 positions x 32 kv dims x 4 bytes x 1 sequence.
  EXPECT_EQ(j["kv_cache"]["bytes"], 2 * 5 * 512 * 32 * 4);
  uint64_t stored = 0;
  bool saw_tied = false;
  for (const auto& t : j["tensors"]) {
    if (t.contains("tied_to")) {
      saw_tied = true;
      EXPECT_EQ(t["name"], "output.weight");
      continue;
    }
    stored += t["bytes"].get<uint64_t>();
  }
  EXPECT_TRUE(saw_tied);
  EXPECT_EQ(j["weight_bytes"], stored);
  EXPECT_EQ(j["bytes_by_type"]["f32"]["bytes"], stored);

  auto text = run("model info " + kStoriesGguf);
  ASSERT_EQ(text.code, 0) << text.out;
  for (const char* s : {"tokenizer.ggml.tokens", "[string; 512]", "blk.4.ffn_down.weight", "172 x 64",
                        "total weight bytes", "KV cache", "context 2048"})
    EXPECT_NE(text.out.find(s), std::string::npos) << s << "\n" << text.out;

  auto bad = run("model info " + work("does-not-exist.gguf"));
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("does-not-exist.gguf"), std::string::npos) << bad.out;
}

TEST(ModelQuantizeCli, ConvertsAndReportsErrors) {
  const std::string out = work("cli_bf16.gguf");
  auto r = run("model quantize " + kStoriesBin + " " + out + " --type bf16");
  ASSERT_EQ(r.code, 0) << r.out;
  auto m = open_model(out);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->find("blk.0.attn_q.weight")->type, WeightType::BF16);
  EXPECT_EQ(m->find("blk.0.attn_norm.weight")->type, WeightType::F32);

  auto bad_type = run("model quantize " + kStoriesBin + " " + work("cli_x.gguf") + " --type q3_k");
  EXPECT_NE(bad_type.code, 0);
  EXPECT_NE(bad_type.out.find("q3_k"), std::string::npos) << bad_type.out;
  auto fallback = run("model quantize " + kStoriesBin + " " + work("cli_x.gguf") + " --type q4_0");
  EXPECT_EQ(fallback.code, 0) << fallback.out;
  EXPECT_NE(fallback.out.find("not a multiple of the q4_0 block size 32: using f16"), std::string::npos) << fallback.out;

  // --type q5_k on 64-wide rows: the K-quant's 256-element blocks do not fit, q5_0's do (and the
  // 172-wide ffn_down takes f16); the file type is the uniform Q5_K's, Q5_K_S.
  const std::string q5 = work("cli_q5_k.gguf");
  auto k5 = run("model quantize " + kStoriesBin + " " + q5 + " --type q5_k");
  ASSERT_EQ(k5.code, 0) << k5.out;
  EXPECT_NE(k5.out.find("not a multiple of the q5_k block size 256: using q5_0"), std::string::npos) << k5.out;
  auto m5 = open_model(q5);
  ASSERT_TRUE(m5.ok()) << m5.error().message;
  EXPECT_EQ(m5->find("blk.0.attn_q.weight")->type, WeightType::Q5_0);
  EXPECT_EQ(m5->find("blk.0.ffn_down.weight")->type, WeightType::F16);
  auto info5 = run("model info " + q5);
  ASSERT_EQ(info5.code, 0) << info5.out;
  EXPECT_NE(info5.out.find("file type: Q5_K_S (LLAMA_FTYPE_MOSTLY_Q5_K_S = 16"), std::string::npos) << info5.out;
}
