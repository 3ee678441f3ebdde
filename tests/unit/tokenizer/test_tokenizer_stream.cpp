#include <gtest/gtest.h>

#include "shard/tokenizer/utf8.h"
#include "tests/unit/tokenizer/test_tokenizer_data.h"

using namespace tandem;
using namespace tandem::testing;

namespace {

int32_t byte_token(const Tokenizer& t, int b) {
  const std::string name = fmt::format("<0x{:02X}>", b);
  for (int32_t id = 0; id < t.n_vocab(); ++id)
    if (t.vocab().tokens[id] == name) return id;
  return -1;
}

const std::string kFffd = "\xEF\xBF\xBD";

}  // namespace

TEST(TokenizerStream, HoldsAMultiByteCharacterUntilItIsComplete) {
  const Tokenizer& t = tok512_gguf();
  const auto ids = t.encode("\xF0\x9F\xA6\x99!", /*add_special=*/true);  // BOS "▁" F0 9F A6 99 "!"
  ASSERT_EQ(ids.size(), 7u);
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push(ids[0]), "");  // BOS
  EXPECT_EQ(sd.push(ids[1]), "");  // the prefix space, dropped
  EXPECT_EQ(sd.push(ids[2]), "");
  EXPECT_EQ(sd.push(ids[3]), "");
  EXPECT_EQ(sd.push(ids[4]), "");
  EXPECT_EQ(sd.push(ids[5]), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(sd.push(ids[6]), "!");
  EXPECT_EQ(sd.finish(), "");
}

TEST(TokenizerStream, InvalidBytesBecomeReplacementCharacters) {
  const Tokenizer& t = tok512_gguf();
  const int32_t ff = byte_token(t, 0xFF), e2 = byte_token(t, 0xE2), x96 = byte_token(t, 0x96), a = byte_token(t, 'a');
  ASSERT_GE(ff, 0);
  ASSERT_GE(e2, 0);
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push(ff), kFffd);  // can never start a character: replaced at once
  EXPECT_EQ(sd.push(e2), "");     // may still complete
  EXPECT_EQ(sd.push(x96), "");
  EXPECT_EQ(sd.push(a), kFffd + "a");  // it did not: one U+FFFD for the two bytes, then 'a'
  EXPECT_EQ(sd.push(e2), "");
  EXPECT_EQ(sd.finish(), kFffd);  // flushed at the end
  EXPECT_EQ(sd.finish(), "");
}

TEST(TokenizerStream, KeepsTheLeadingSpaceOfAContinuation) {
  const Tokenizer& t = tok512_gguf();
  const auto ids = t.encode("Once upon", /*add_special=*/false);
  std::string after_bos, continuation;
  StreamDecoder first(t, /*first_is_after_bos=*/true), cont(t, /*first_is_after_bos=*/false);
  for (int32_t id : ids) {
    after_bos += first.push(id);
    continuation += cont.push(id);
  }
  EXPECT_EQ(after_bos, "Once upon");
  EXPECT_EQ(continuation, " Once upon");
  // GPT-2 has no space prefix: nothing is ever dropped.
  StreamDecoder g(gpt2());
  std::string out;
  for (int32_t id : gpt2().encode(" Hello", false)) out += g.push(id);
  EXPECT_EQ(out, " Hello");
}

TEST(TokenizerStream, MatchesDecodeOnEveryConformanceText) {
  for (const auto& [tok, name] : {std::pair{&llama_spm(), "ggml-vocab-llama-spm.gguf"}, {&gpt2(), "ggml-vocab-gpt-2.gguf"}}) {
    for (const std::string& text : read_vocab_texts(kVocabTexts + "/" + name + ".inp")) {
      const auto ids = tok->encode(text, true);
      StreamDecoder sd(*tok);
      std::string out;
      for (int32_t id : ids) {
        const std::string part = sd.push(id);
        EXPECT_TRUE(utf8_valid(part)) << name;
        out += part;
        EXPECT_EQ(text.compare(0, out.size(), out), 0) << name << ": released text that is not a prefix";
      }
      out += sd.finish();
      EXPECT_EQ(out, text) << name;
      EXPECT_EQ(out, tok->decode(ids)) << name;
    }
  }
}

TEST(TokenizerUtf8, SanitizeReplacesEachMaximalSubpart) {
  auto sanitize = [](std::string_view s, bool flush, size_t* held = nullptr) {
    std::string out;
    const size_t h = utf8_sanitize(s, out, flush);
    if (held) *held = h;
    return out;
  };
  size_t held = 99;
  EXPECT_EQ(sanitize("plain ascii", false, &held), "plain ascii");
  EXPECT_EQ(held, 0u);
  EXPECT_EQ(sanitize("\xF0\x9F\xA6\x99 \xC3\xA9", false), "\xF0\x9F\xA6\x99 \xC3\xA9");
  EXPECT_EQ(sanitize("a\x80" "b", false), "a" + kFffd + "b");
  EXPECT_EQ(sanitize("x\xE2\x96", false, &held), "x");
  EXPECT_EQ(held, 2u);
  EXPECT_EQ(sanitize("x\xE2\x96", true, &held), "x" + kFffd);
  EXPECT_EQ(held, 0u);
  EXPECT_EQ(sanitize("\xE2\x96" "a", false), kFffd + "a");
  // Surrogates, overlongs and bytes that never occur: one U+FFFD per byte.
  EXPECT_EQ(sanitize("\xED\xA0\x80", false), kFffd + kFffd + kFffd);
  EXPECT_EQ(sanitize("\xC0\xAF", false), kFffd + kFffd);
  EXPECT_EQ(sanitize("\xFF", false), kFffd);
  EXPECT_EQ(sanitize("\xF4\x90\x80\x80", false), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  EXPECT_TRUE(utf8_valid("\xF4\x8F\xBF\xBF"));
  EXPECT_FALSE(utf8_valid("\xF0\x9F\xA6"));
}
