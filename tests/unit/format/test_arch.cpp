// The architecture table and what reading a family means: llama.cpp's names, keys and tensors
// (checked on files laid out as its converter writes Qwen2 and Qwen3), refusals that name what is
// wrong, the file type and tensor types as llama.cpp names them, and `model info` / `model synth`
// on every family.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "shard/format/arch.h"
#include "shard/format/file_type.h"
#include "shard/format/model_file.h"
#include "shard/format/model_quantize.h"
#include "shard/format/synth.h"
#include "tests/unit/format/llama_cpp_layout.h"

using namespace tandem;
using namespace tandem::test;

namespace {

const std::string kStoriesGguf = std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf";

std::string work(const std::string& name) { return std::string(TANDEM_TEST_WORK) + "/arch_" + name; }

struct RunResult {
  int code;
  std::string out;
};
RunResult run(const std::string& args, const std::string& log_name) {
  const std::string log = work(log_name + ".log");
  const int rc = std::system((std::string(TANDEM_BIN) + " " + args + " >" + log + " 2>&1").c_str());
  std::ifstream f(log);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, std::string(std::istreambuf_iterator<char>(f), {})};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<std::string> names_of_layer(const std::vector<TensorSpec>& specs, int layer) {
  std::vector<std::string> v;
  for (const auto& t : specs)
    if (t.layer == layer) v.push_back(t.name + (t.required ? "" : "?"));
  return v;
}

}  // namespace

TEST(Arch, TableHasLlamaCppsFamilies) {
  EXPECT_EQ(supported_arch_list(), "llama, mistral, qwen2, qwen3");
  const ArchInfo* llama = find_arch("llama");
  const ArchInfo* qwen2 = find_arch("qwen2");
  const ArchInfo* qwen3 = find_arch("qwen3");
  ASSERT_TRUE(llama && qwen2 && qwen3 && find_arch("mistral"));
  EXPECT_EQ(find_arch("qwen"), nullptr);
  EXPECT_EQ(find_arch("qwen2moe"), nullptr);
  EXPECT_EQ(find_arch("Qwen2"), nullptr);  // general.architecture is matched exactly, as llama.cpp does
  // llama_model_rope_type: LLAMA_ROPE_TYPE_NORM for llama, NEOX for qwen2 and qwen3.
  EXPECT_EQ(llama->rope, RopeStyle::Adjacent);
  EXPECT_EQ(qwen2->rope, RopeStyle::Neox);
  EXPECT_EQ(qwen3->rope, RopeStyle::Neox);
  EXPECT_EQ(rope_style_name(qwen3->rope), "neox");
  EXPECT_TRUE(qwen2->qkv_bias && !qwen2->qk_norm);
  EXPECT_TRUE(qwen3->qk_norm && !qwen3->qkv_bias);
  EXPECT_TRUE(!llama->qkv_bias && !llama->qk_norm && llama->rope_freqs);
  EXPECT_FALSE(qwen2->rope_freqs || qwen3->rope_freqs);
}

// The names llama.cpp gives each tensor (gguf-py TENSOR_NAMES: "blk.{bid}.attn_q", ...), which
// of them each family may hold, and their shapes.
TEST(Arch, ModelTensorsAreLlamaCppsNames) {
  ModelConfig c;
  c.arch = "qwen3";
  c.n_vocab = 100, c.dim = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 32, c.ffn_dim = 96;
  c.rope_dim = 32, c.ctx_len = 16;
  const auto q3 = model_tensors(c);
  EXPECT_EQ(names_of_layer(q3, -1), (std::vector<std::string>{"token_embd.weight", "output_norm.weight", "output.weight?"}));
  EXPECT_EQ(names_of_layer(q3, 1),
            (std::vector<std::string>{"blk.1.attn_q.weight", "blk.1.attn_q.bias?", "blk.1.attn_k.weight",
                                      "blk.1.attn_k.bias?", "blk.1.attn_v.weight", "blk.1.attn_v.bias?",
                                      "blk.1.attn_output.weight", "blk.1.attn_q_norm.weight",
                                      "blk.1.attn_k_norm.weight", "blk.1.attn_norm.weight", "blk.1.ffn_gate.weight",
                                      "blk.1.ffn_down.weight", "blk.1.ffn_up.weight", "blk.1.ffn_norm.weight"}));
  auto shape = [](const std::vector<TensorSpec>& specs, const std::string& name) {
    for (const auto& t : specs)
      if (t.name == name) return std::vector<int64_t>{t.cols, t.rows};
    return std::vector<int64_t>{};
  };
  EXPECT_EQ(shape(q3, "blk.0.attn_q.weight"), (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(shape(q3, "blk.0.attn_output.weight"), (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(shape(q3, "blk.0.attn_k.bias"), (std::vector<int64_t>{64, 1}));
  EXPECT_EQ(shape(q3, "blk.0.attn_q_norm.weight"), (std::vector<int64_t>{32, 1}));
  c.arch = "llama";
  const auto ll = model_tensors(c);
  EXPECT_EQ(names_of_layer(ll, -1), (std::vector<std::string>{"token_embd.weight", "output_norm.weight",
                                                              "output.weight?", "rope_freqs.weight?"}));
  EXPECT_EQ(names_of_layer(ll, 0).size(), 12u);  // 9 weights and 3 optional biases
  c.arch = "qwen2";
  EXPECT_EQ(names_of_layer(model_tensors(c), 0).size(), 12u);
}

// A Qwen2 file as convert_hf_to_gguf.py writes it (tied, biases, no vocab_size or
// rope.dimension_count key, theta 1e6, eps 1e-6): tandem reads the shape llama.cpp reads.
TEST(Arch, ReadsQwen2AsLlamaCppsConverterWritesIt) {
  auto path = write_llama_cpp_layout({});
  ASSERT_TRUE(path.ok()) << path.error().message;
  auto m = open_model(*path);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);  // embedding_length / head_count: no key_length in a Qwen2 file
  EXPECT_EQ(c.rope_dim, 16);  // n_rot defaults to the head size
  EXPECT_EQ(c.ffn_dim, 128);
  EXPECT_EQ(c.ctx_len, 32768);
  EXPECT_EQ(c.n_vocab, 50257);  // from tokenizer.ggml.tokens, as llama.cpp's vocab
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(m->vocab.pre, "qwen2");
  ASSERT_TRUE(m->find("blk.1.attn_v.bias"));
  EXPECT_EQ(m->find("blk.1.attn_v.bias")->ne, (std::vector<int64_t>{32}));
}

TEST(Arch, ReadsQwen3AsLlamaCppsConverterWritesIt) {
  LlamaCppLayout o;
  o.arch = "qwen3";
  o.head_dim = 32;  // q 128 wide on a 64-wide model, as Qwen3-0.6B's 16 x 128 on 1024
  o.tied = false;
  auto path = write_llama_cpp_layout(o);
  ASSERT_TRUE(path.ok()) << path.error().message;
  auto m = open_model(*path);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.arch, "qwen3");
  EXPECT_EQ(c.head_dim, 32);  // qwen3.attention.key_length
  EXPECT_EQ(c.q_dim(), 128);
  EXPECT_EQ(c.rope_dim, 32);
  EXPECT_FALSE(c.tied_output);
  EXPECT_TRUE(m->find("blk.0.attn_q_norm.weight"));
}

TEST(Arch, RefusesWhatItDoesNotRunNamingIt) {
  struct Case {
    LlamaCppLayout o;
    std::vector<std::string> want;
  };
  auto variant = [](std::string arch, std::string tag) {
    LlamaCppLayout o;
    o.arch = std::move(arch);
    o.tag = std::move(tag);
    return o;
  };
  std::vector<Case> cases;
  {  // an architecture outside the table: named, with the supported list
    LlamaCppLayout o = variant("gemma2", "unknown");
    cases.push_back({o, {"architecture 'gemma2' is not supported", "llama, mistral, qwen2, qwen3"}});
  }
  {  // qwen3 needs its q/k norms (llama.cpp creates them as required)
    LlamaCppLayout o = variant("qwen3", "nonorm");
    o.drop = {"blk.1.attn_k_norm.weight"};
    cases.push_back({o, {"missing tensor 'blk.1.attn_k_norm.weight'"}});
  }
  {  // a qwen2 file holding q/k norms is not a qwen2 model (llama.cpp: wrong number of tensors)
    LlamaCppLayout o = variant("qwen2", "extranorm");
    o.extra = {{"blk.0.attn_q_norm.weight", {16}}};
    cases.push_back({o, {"tensor 'blk.0.attn_q_norm.weight' is not part of a 'qwen2' model", "attn_q.bias?"}});
  }
  {  // nor one with rope_freqs (only llama's loader takes them)
    LlamaCppLayout o = variant("qwen2", "ropefreqs");
    o.extra = {{"rope_freqs.weight", {8}}};
    cases.push_back({o, {"tensor 'rope_freqs.weight' is not part of a 'qwen2' model"}});
  }
  {  // an output bias (llama.cpp's qwen2 would add it; tandem does not implement it)
    LlamaCppLayout o = variant("qwen2", "outbias");
    o.extra = {{"output.bias", {50257}}};
    cases.push_back({o, {"tensor 'output.bias' is not part of a 'qwen2' model"}});
  }
  {  // a bias of the wrong length
    LlamaCppLayout o = variant("qwen2", "badbias");
    o.drop = {"blk.0.attn_k.bias"};
    o.extra = {{"blk.0.attn_k.bias", {16}}};
    cases.push_back({o, {"blk.0.attn_k.bias", "has shape [16]", "[32, 1]"}});
  }
  for (const Case& k : cases) {
    SCOPED_TRACE(k.o.tag);
    auto path = write_llama_cpp_layout(k.o);
    ASSERT_TRUE(path.ok()) << path.error().message;
    auto m = open_model(*path);
    ASSERT_FALSE(m.ok());
    EXPECT_TRUE(contains(m.error().message, *path)) << m.error().message;
    for (const auto& w : k.want) EXPECT_TRUE(contains(m.error().message, w)) << m.error().message;
  }
  // Biases are optional per tensor, as llama.cpp's create_tensor_qkv makes them: a qwen2 file
  // without some (or a llama file with some) is a valid model.
  LlamaCppLayout some = variant("qwen2", "somebias");
  some.drop = {"blk.0.attn_q.bias", "blk.1.attn_k.bias", "blk.1.attn_v.bias"};
  auto path = write_llama_cpp_layout(some);
  ASSERT_TRUE(path.ok());
  EXPECT_TRUE(open_model(*path).ok());
}

TEST(FileType, NamesAsLlamaCpp) {
  struct Want {
    uint32_t id;
    const char *name, *enum_name, *description;
  };
  for (const Want& w : {Want{0, "F32", "LLAMA_FTYPE_ALL_F32", "all F32"},
                        Want{1, "F16", "LLAMA_FTYPE_MOSTLY_F16", "F16"},
                        Want{7, "Q8_0", "LLAMA_FTYPE_MOSTLY_Q8_0", "Q8_0"},
                        Want{8, "Q5_0", "LLAMA_FTYPE_MOSTLY_Q5_0", "Q5_0"},
                        Want{15, "Q4_K_M", "LLAMA_FTYPE_MOSTLY_Q4_K_M", "Q4_K - Medium"},
                        Want{17, "Q5_K_M", "LLAMA_FTYPE_MOSTLY_Q5_K_M", "Q5_K - Medium"},
                        Want{14, "Q4_K_S", "LLAMA_FTYPE_MOSTLY_Q4_K_S", "Q4_K - Small"},
                        Want{18, "Q6_K", "LLAMA_FTYPE_MOSTLY_Q6_K", "Q6_K"},
                        Want{32, "BF16", "LLAMA_FTYPE_MOSTLY_BF16", "BF16"}}) {
    const FileType f = file_type_from_id(w.id);
    EXPECT_TRUE(f.known);
    EXPECT_EQ(f.name, w.name);
    EXPECT_EQ(f.enum_name, w.enum_name);
    EXPECT_EQ(f.description, w.description);
  }
  EXPECT_FALSE(file_type_from_id(5).known);  // Q4_3, removed
  EXPECT_EQ(file_type_from_id(5).description, "unknown, may not work");
  EXPECT_EQ(file_type_from_id(15, true).description, "(guessed) Q4_K - Medium");
  EXPECT_EQ(ggml_type_name(12), "q4_K");
  EXPECT_EQ(ggml_type_name(13), "q5_K");
  EXPECT_EQ(ggml_type_name(6), "q5_0");
  EXPECT_EQ(ggml_type_name(30), "bf16");
  EXPECT_EQ(ggml_type_name(4), "type 4");
}

// general.file_type when the file has it; else llama.cpp's guess from the most common tensor type.
TEST(FileType, FromTheFileOrGuessed) {
  auto q = write_llama_cpp_layout({});
  ASSERT_TRUE(q.ok());
  auto m = open_model(*q);
  ASSERT_TRUE(m.ok()) << m.error().message;
  FileType ft = file_type_of(*m);
  EXPECT_EQ(ft.name, "F16");
  EXPECT_FALSE(ft.guessed);
  // 1 embedding + 7 matrices per layer in F16; 2 norms + 3 biases per layer and output_norm in F32.
  EXPECT_EQ(tensor_type_counts(*m), (std::map<std::string, int>{{"f16", 1 + 7 * 2}, {"f32", 5 * 2 + 1}}));

  // stories260K (llama.cpp's converter) says ALL_F32; its llama2.c original has no key: guessed.
  auto g = open_model(kStoriesGguf);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(file_type_of(*g).name, "F32");
  auto b = open_model(std::string(TANDEM_TESTDATA) + "/models/stories260K.bin");
  ASSERT_TRUE(b.ok());
  ft = file_type_of(*b);
  EXPECT_TRUE(ft.guessed);
  EXPECT_EQ(ft.description, "(guessed) all F32");
}

TEST(ModelInfoCli, ShowsFamilyTokenizerTemplateAndFileType) {
  auto q = write_llama_cpp_layout({});
  ASSERT_TRUE(q.ok());
  auto r = run("model info " + *q + " --json", "info_qwen2");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["architecture"]["name"], "qwen2");
  EXPECT_EQ(j["architecture"]["rope"], "neox");
  EXPECT_EQ(j["architecture"]["qkv_bias"], true);
  EXPECT_EQ(j["architecture"]["qk_norm"], false);
  EXPECT_EQ(j["architecture"]["tied_head"], true);
  EXPECT_EQ(j["tokenizer"]["pre"], "qwen2");
  EXPECT_EQ(j["chat_template"]["present"], true);
  EXPECT_GT(j["chat_template"]["chars"].get<int>(), 100);
  EXPECT_EQ(j["file_type"]["name"], "F16");
  EXPECT_EQ(j["file_type"]["enum"], "LLAMA_FTYPE_MOSTLY_F16");
  EXPECT_EQ(j["file_type"]["guessed"], false);
  EXPECT_EQ(j["tensor_types"]["f16"], 15);
  EXPECT_EQ(j["tensor_types"]["f32"], 11);

  auto t = run("model info " + *q, "info_qwen2_text");
  ASSERT_EQ(t.code, 0) << t.out;
  for (const char* s : {"architecture qwen2: RoPE neox, q/k/v biases yes, q/k norms no, head tied to token_embd",
                        "pre-tokenizer 'qwen2'", "chat template: yes (",
                        "file type: F16 (LLAMA_FTYPE_MOSTLY_F16 = 1, \"F16\"); tensors: f16 15, f32 11"})
    EXPECT_TRUE(contains(t.out, s)) << s << "\n" << t.out;

  // A synthetic qwen3 (Q4_K matrices): no template, no pre-tokenizer (an SPM vocabulary).
  const std::string out = work("info_qwen3.gguf");
  auto s = run("model synth --arch qwen3 --out " + out +
                   " --type q4_k --dim 256 --layers 2 --heads 4 --kv-heads 2 --head-dim 128 --ffn 512 --vocab-from " +
                   kStoriesGguf,
               "synth_qwen3");
  ASSERT_EQ(s.code, 0) << s.out;
  auto i3 = run("model info " + out + " --json", "info_qwen3");
  ASSERT_EQ(i3.code, 0) << i3.out;
  j = nlohmann::json::parse(i3.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << i3.out;
  EXPECT_EQ(j["architecture"]["name"], "qwen3");
  EXPECT_EQ(j["architecture"]["qk_norm"], true);
  EXPECT_EQ(j["architecture"]["qkv_bias"], false);
  EXPECT_EQ(j["architecture"]["tied_head"], false);
  EXPECT_EQ(j["config"]["head_dim"], 128);
  EXPECT_EQ(j["chat_template"]["present"], false);
  EXPECT_TRUE(j["tokenizer"]["pre"].is_null());
  EXPECT_EQ(j["file_type"]["name"], "Q4_K_S");  // tandem's uniform Q4_K, the llama_ftype it writes
  EXPECT_EQ(j["tensor_types"]["q4_K"], 2 + 7 * 2);  // token_embd, output, 7 per layer
  EXPECT_EQ(j["tensor_types"]["f32"], 1 + 4 * 2);
}

// synth --arch writes each family with the tensors llama.cpp's converter writes for it.
TEST(SynthCli, WritesEveryFamilyAndRefusesOthers) {
  struct Family {
    const char* arch;
    const char* flags;
    bool bias, qk_norm, tied;
  };
  for (const Family& f : {Family{"llama", "", false, false, false}, Family{"qwen2", "--tied", true, false, true},
                          Family{"qwen3", "--head-dim 64", false, true, false}}) {
    SCOPED_TRACE(f.arch);
    const std::string out = work(fmt::format("synth_{}.gguf", f.arch));
    auto r = run(fmt::format("model synth --arch {} {} --out {} --type q8_0 --dim 128 --layers 2 --heads 4 --kv-heads 2 "
                             "--ffn 256 --vocab-from {}",
                             f.arch, f.flags, out, kStoriesGguf),
                 fmt::format("synth_{}", f.arch));
    ASSERT_EQ(r.code, 0) << r.out;
    auto m = open_model(out);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(m->config.arch, f.arch);
    EXPECT_EQ(m->gguf->get_string("general.architecture"), f.arch);
    EXPECT_TRUE(m->gguf->find(fmt::format("{}.embedding_length", f.arch)));
    EXPECT_EQ(m->config.tied_output, f.tied);
    for (int l = 0; l < 2; ++l)
      for (const char* w : {"attn_q", "attn_k", "attn_v"})
        EXPECT_EQ(m->find(tensor_bias_layer(l, w)) != nullptr, f.bias) << l << " " << w;
    EXPECT_EQ(m->find("blk.1.attn_q_norm.weight") != nullptr, f.qk_norm);
    EXPECT_EQ(m->find("blk.1.attn_k_norm.weight") != nullptr, f.qk_norm);
    if (f.qk_norm) {
      EXPECT_EQ(m->config.head_dim, 64);
      EXPECT_EQ(m->gguf->get_int("qwen3.attention.key_length"), 64);
    }
    if (f.bias) EXPECT_EQ(m->find("blk.0.attn_q.bias")->type, WeightType::F32);
  }
  auto bad = run("model synth --arch gemma2 --out " + work("synth_bad.gguf") + " --vocab-from " + kStoriesGguf,
                 "synth_bad");
  EXPECT_NE(bad.code, 0);
  EXPECT_TRUE(contains(bad.out, "--arch 'gemma2' is not supported (supported: llama, mistral, qwen2, qwen3)"))
      << bad.out;
  EXPECT_FALSE(contains(bad.out, "default vocabulary")) << bad.out;
  auto help = run("model synth --help", "synth_help");
  EXPECT_TRUE(contains(help.out, "--arch") && contains(help.out, "--tied") && contains(help.out, "--head-dim"))
      << help.out;
}

// model quantize keeps the family: the architecture keys, the biases and q/k norms (1-D, F32).
TEST(Arch, QuantizeKeepsTheFamily) {
  LlamaCppLayout q3;
  q3.arch = "qwen3";
  q3.head_dim = 32;
  q3.tied = false;
  for (const LlamaCppLayout& o : {LlamaCppLayout{}, q3}) {
    SCOPED_TRACE(o.arch);
    auto src = write_llama_cpp_layout(o);
    ASSERT_TRUE(src.ok());
    auto in = open_model(*src);
    ASSERT_TRUE(in.ok()) << in.error().message;
    const std::string out = work(o.arch + "_q8_0.gguf");
    ASSERT_TRUE(quantize_model(*in, out, WeightType::Q8_0, 2).ok());
    auto m = open_model(out);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(m->config.arch, o.arch);
    EXPECT_EQ(m->config.head_dim, in->config.head_dim);
    EXPECT_EQ(m->config.tied_output, in->config.tied_output);
    EXPECT_EQ(file_type_of(*m).name, "Q8_0");
    const char* piece = o.arch == "qwen2" ? "blk.1.attn_k.bias" : "blk.1.attn_k_norm.weight";
    ASSERT_TRUE(m->find(piece));
    EXPECT_EQ(m->find(piece)->type, WeightType::F32);
    EXPECT_EQ(m->find("blk.0.attn_q.weight")->type, WeightType::Q8_0);
  }
}
