#include <gtest/gtest.h>

#include "shard/gguf_reader.h"

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
