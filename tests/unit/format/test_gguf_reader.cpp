#include <gtest/gtest.h>

#include "shard/format/gguf_reader.h"

using namespace tandem;

TEST(GgufReader, ReadsRealStories260K) {
  auto f = open_gguf(std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(f->get_string("general.architecture").value_or(""), "llama");
  EXPECT_EQ(f->get_int("llama.embedding_length").value_or(0), 64);
  EXPECT_EQ(f->get_int("llama.block_count").value_or(0), 5);
  EXPECT_EQ(f->get_strings("tokenizer.ggml.tokens").size(), 512u);
  const auto* emb = f->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->ne[0], 64);
  EXPECT_EQ(emb->ne[1], 512);
}

TEST(GgufReader, MissingFileIsAnError) {
  auto f = open_gguf("/nonexistent/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("/nonexistent/model.gguf"), std::string::npos);
}

TEST(GgufReader, LossyUtf8DamageIsExplained) {
  // The shared copy of this vocabulary went through a lossy UTF-8 conversion (see
  // tests/tools/restore_vocab.py); the reader must refuse it with a message that says why.
  auto f = open_gguf(std::string(TANDEM_TESTDATA) + "/vocab/ggml-vocab-llama-spm.gguf");
  if (f.ok()) GTEST_SKIP() << "the shared vocabulary is intact";
  EXPECT_NE(f.error().message.find("lossy UTF-8"), std::string::npos) << f.error().message;
}

TEST(GgufReader, RestoredVocabulariesParse) {
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"}) {
    auto f = open_gguf(std::string(TANDEM_VOCAB_DIR) + "/" + name);
    ASSERT_TRUE(f.ok()) << f.error().message;
    EXPECT_GT(f->get_strings("tokenizer.ggml.tokens").size(), 30000u) << name;
    EXPECT_TRUE(f->tensors.empty()) << name;
  }
}
