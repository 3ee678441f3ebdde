#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "shard/format/gguf_reader.h"
#include "shard/format/gguf_writer.h"
#include "shard/format/vocab.h"

using namespace tandem;

namespace {

const std::string kModels = std::string(TANDEM_TESTDATA) + "/models";
const std::string kTok512 = kModels + "/tok512.bin";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string write_scratch(const std::string& name, const std::string& bytes) {
  const std::string path = std::string(TANDEM_TEST_WORK) + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// A small in-memory GGUF with a valid SPM vocabulary; tests break one key at a time.
GgufFile small_spm() {
  GgufFile f;
  f.path = "small.gguf";
  f.metadata = {{"tokenizer.ggml.model", gguf_str("llama")},
                {"tokenizer.ggml.tokens", gguf_str_array({"<unk>", "<s>", "</s>", "a", "\xE2\x96\x81"})},
                {"tokenizer.ggml.scores", gguf_f32_array({0, 0, 0, -1, -2})},
                {"tokenizer.ggml.token_type", gguf_i32_array({2, 3, 3, 1, 1})}};
  return f;
}

void set_key(GgufFile& f, const std::string& key, GgufValue v) {
  for (auto& [k, old] : f.metadata)
    if (k == key) {
      old = std::move(v);
      return;
    }
  f.metadata.emplace_back(key, std::move(v));
}

void expect_error(const GgufFile& f, std::initializer_list<const char*> needles) {
  auto v = vocab_from_gguf(f);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find(f.path), std::string::npos) << v.error().message;
  for (const char* n : needles) EXPECT_NE(v.error().message.find(n), std::string::npos) << v.error().message;
}

}  // namespace

TEST(Vocab, Llama2cTokenizerEqualsTheConvertedGguf) {
  auto g = open_gguf(kModels + "/stories260K.gguf");
  ASSERT_TRUE(g.ok()) << g.error().message;
  auto a = vocab_from_gguf(*g);
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = vocab_from_llama2c(kTok512);
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_EQ(a->tokens.size(), 512u);
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_EQ(a->scores, b->scores);
  EXPECT_EQ(a->types, b->types);
  EXPECT_EQ(a->kind, TokenizerKind::Spm);
  EXPECT_EQ(b->kind, TokenizerKind::Spm);
  for (const Vocab* v : {&*a, &*b}) {
    EXPECT_EQ(v->bos, 1);
    EXPECT_EQ(v->eos, 2);
    EXPECT_EQ(v->unk, 0);
    EXPECT_EQ(v->pad, -1);  // the GGUF stores 0xFFFFFFFF: no padding token
    EXPECT_TRUE(v->add_bos);
    EXPECT_FALSE(v->add_eos);
    EXPECT_TRUE(v->add_space_prefix);
  }
  // Spot checks of the conversion: names of ids 0-2, byte tokens, "▁" for spaces.
  EXPECT_EQ(b->tokens[1], "<s>");
  EXPECT_EQ(b->types[1], static_cast<int32_t>(TokenType::Control));
  EXPECT_EQ(b->tokens[3 + 0x0A], "<0x0A>");
  EXPECT_EQ(b->types[3 + 0x0A], static_cast<int32_t>(TokenType::Byte));
  EXPECT_EQ(b->tokens[259].rfind("\xE2\x96\x81", 0), 0u) << b->tokens[259];
}

TEST(Vocab, ReadsTheRestoredLlamaCppVocabularies) {
  auto spm = load_vocab(std::string(TANDEM_VOCAB_DIR) + "/ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(spm.ok()) << spm.error().message;
  EXPECT_EQ(spm->kind, TokenizerKind::Spm);
  EXPECT_EQ(spm->tokens.size(), 32000u);
  EXPECT_EQ(spm->scores.size(), 32000u);
  EXPECT_EQ(spm->pre, "default");
  EXPECT_EQ(spm->bos, 1);
  EXPECT_TRUE(spm->add_bos);

  auto bpe = load_vocab(std::string(TANDEM_VOCAB_DIR) + "/ggml-vocab-gpt-2.gguf");
  ASSERT_TRUE(bpe.ok()) << bpe.error().message;
  EXPECT_EQ(bpe->kind, TokenizerKind::Bpe);
  EXPECT_EQ(bpe->pre, "gpt-2");
  EXPECT_EQ(bpe->tokens.size(), 50257u);
  EXPECT_EQ(bpe->merges.size(), 50000u);
  EXPECT_EQ(bpe->merges[0], "\xC4\xA0 t");  // "Ġ t"
  EXPECT_EQ(bpe->bos, 50256);
  EXPECT_EQ(bpe->eos, 50256);
  EXPECT_EQ(bpe->unk, -1);  // llama.cpp's BPE default
  EXPECT_FALSE(bpe->add_bos);  // no add_bos_token key: llama.cpp's default for gpt-2
  EXPECT_FALSE(bpe->add_space_prefix);
}

TEST(Vocab, LoadVocabTellsTheFormatsApart) {
  auto bin = load_vocab(kTok512);
  ASSERT_TRUE(bin.ok()) << bin.error().message;
  EXPECT_EQ(bin->tokens.size(), 512u);
  auto gguf = load_vocab(kModels + "/stories260K.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.error().message;
  EXPECT_EQ(gguf->tokens, bin->tokens);
  // A model checkpoint is not a tokenizer: the error says how the file was read.
  auto ckpt = load_vocab(kModels + "/stories260K.bin");
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.error().message.find("llama2.c tokenizer"), std::string::npos) << ckpt.error().message;
  auto missing = load_vocab("/nonexistent/tok.bin");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/tok.bin"), std::string::npos);
}

TEST(Vocab, GgufValidationNamesTheFileAndTheProblem) {
  ASSERT_TRUE(vocab_from_gguf(small_spm()).ok());

  GgufFile f = small_spm();
  set_key(f, "tokenizer.ggml.model", gguf_str("bert"));
  expect_error(f, {"bert", "not supported"});

  f = small_spm();
  f.metadata.erase(f.metadata.begin());  // no tokenizer.ggml.model
  expect_error(f, {"tokenizer.ggml.model"});

  f = small_spm();
  set_key(f, "tokenizer.ggml.tokens", gguf_str_array({}));
  expect_error(f, {"tokenizer.ggml.tokens", "empty"});

  f = small_spm();
  set_key(f, "tokenizer.ggml.tokens", gguf_f32_array({1, 2}));
  expect_error(f, {"tokenizer.ggml.tokens", "type"});

  f = small_spm();
  set_key(f, "tokenizer.ggml.scores", gguf_f32_array({0, 0, 0}));
  expect_error(f, {"tokenizer.ggml.scores", "3 entries", "5"});

  f = small_spm();
  set_key(f, "tokenizer.ggml.token_type", gguf_i32_array({1, 1, 1, 1, 1, 1}));
  expect_error(f, {"tokenizer.ggml.token_type", "6 entries"});

  f = small_spm();
  set_key(f, "tokenizer.ggml.bos_token_id", gguf_u32(5));
  expect_error(f, {"tokenizer.ggml.bos_token_id", "5", "outside"});

  f = small_spm();
  set_key(f, "tokenizer.ggml.eos_token_id", gguf_str("2"));
  expect_error(f, {"tokenizer.ggml.eos_token_id", "not a token id"});

  f = small_spm();
  set_key(f, "tokenizer.ggml.add_bos_token", gguf_str("yes"));
  expect_error(f, {"tokenizer.ggml.add_bos_token", "boolean"});

  f = small_spm();
  set_key(f, "tokenizer.ggml.bos_token_id", gguf_u32(0xFFFFFFFFu));  // "none" ...
  expect_error(f, {"add_bos_token is true", "no BOS"});               // ... but a BOS is asked for

  f = small_spm();
  set_key(f, "tokenizer.ggml.model", gguf_str("gpt2"));  // BPE without merges
  expect_error(f, {"tokenizer.ggml.merges"});
}

TEST(Vocab, GgufKeysOverrideTheDefaults) {
  GgufFile f = small_spm();
  set_key(f, "tokenizer.ggml.add_bos_token", gguf_bool(false));
  set_key(f, "tokenizer.ggml.add_eos_token", gguf_bool(true));
  set_key(f, "tokenizer.ggml.add_space_prefix", gguf_bool(false));
  set_key(f, "tokenizer.ggml.padding_token_id", gguf_u32(3));
  set_key(f, "tokenizer.ggml.eos_token_id", gguf_u32(4));
  auto v = vocab_from_gguf(f);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_FALSE(v->add_bos);
  EXPECT_TRUE(v->add_eos);
  EXPECT_FALSE(v->add_space_prefix);
  EXPECT_EQ(v->pad, 3);
  EXPECT_EQ(v->eos, 4);
  EXPECT_EQ(v->bos, 1);  // SPM default
}

TEST(Vocab, Llama2cValidationNamesTheFileAndTheProblem) {
  const std::string good = read_file(kTok512);
  ASSERT_GT(good.size(), 100u);

  auto empty = vocab_from_llama2c(write_scratch("tok_empty.bin", ""));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("tok_empty.bin"), std::string::npos) << empty.error().message;

  // Cut inside a token's bytes, then inside a record header.
  for (size_t cut : {good.size() - 1, good.size() - 5}) {
    auto t = vocab_from_llama2c(write_scratch("tok_cut.bin", good.substr(0, cut)));
    ASSERT_FALSE(t.ok()) << cut;
    EXPECT_NE(t.error().message.find("truncated"), std::string::npos) << t.error().message;
  }

  std::string bad_len = good;
  const int32_t huge = 1 << 30;
  std::memcpy(bad_len.data() + 4 + 4, &huge, 4);  // token 0's length
  auto t = vocab_from_llama2c(write_scratch("tok_len.bin", bad_len));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("token 0"), std::string::npos) << t.error().message;
  EXPECT_NE(t.error().message.find("max_token_length"), std::string::npos) << t.error().message;
}
