#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "shard/format/gguf_reader.h"
#include "shard/tokenizer/utf8.h"
#include "tests/unit/tokenizer/test_tokenizer_data.h"

using namespace tandem;
using namespace tandem::testing;

namespace {

std::string stream_decode(const Tokenizer& tok, const std::vector<int32_t>& ids, bool* all_valid) {
  StreamDecoder sd(tok);
  std::string out;
  for (int32_t id : ids) {
    const std::string part = sd.push(id);
    *all_valid = *all_valid && utf8_valid(part);
    out += part;
  }
  const std::string rest = sd.finish();
  *all_valid = *all_valid && utf8_valid(rest);
  return out + rest;
}

// Every text of llama.cpp's vocabulary test gives exactly the expected ids, decodes back to itself
// and streams back to itself without ever releasing a broken character.
void check_conformance(const Tokenizer& tok, const std::string& name) {
  const auto texts = read_vocab_texts(kVocabTexts + "/" + name + ".inp");
  const auto expected = read_vocab_ids(kVocabTexts + "/" + name + ".out");
  ASSERT_EQ(texts.size(), 46u);
  ASSERT_EQ(texts.size(), expected.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& text = texts[i];
    const auto ids = tok.encode(text, /*add_special=*/false);
    EXPECT_EQ(ids, expected[i]) << name << " text " << i << ": [" << text << "]";
    EXPECT_EQ(tok.decode(ids), text) << name << " text " << i;
    bool valid = true;
    EXPECT_EQ(stream_decode(tok, ids, &valid), text) << name << " text " << i;
    EXPECT_TRUE(valid) << name << " text " << i;

    // With special tokens: only a BOS in front, when the vocabulary asks for one.
    auto with_bos = tok.encode(text, /*add_special=*/true);
    if (tok.vocab().add_bos) {
      ASSERT_FALSE(with_bos.empty());
      EXPECT_EQ(with_bos.front(), tok.bos());
      with_bos.erase(with_bos.begin());
    }
    EXPECT_EQ(with_bos, ids) << name << " text " << i;
  }
}

}  // namespace

TEST(TokenizerConformance, LlamaSpmMatchesLlamaCpp) { check_conformance(llama_spm(), "ggml-vocab-llama-spm.gguf"); }

TEST(TokenizerConformance, Gpt2MatchesLlamaCpp) { check_conformance(gpt2(), "ggml-vocab-gpt-2.gguf"); }

TEST(TokenizerConformance, Tok512GgufAndLlama2cAgree) {
  const Tokenizer& g = tok512_gguf();
  const Tokenizer& b = tok512_bin();
  EXPECT_EQ(g.n_vocab(), 512);
  EXPECT_EQ(b.n_vocab(), 512);
  for (const std::string& text : varied_texts()) {
    const auto ids = g.encode(text);
    EXPECT_EQ(b.encode(text), ids) << "[" << text << "]";
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), 1);  // BOS
    EXPECT_EQ(g.decode(ids), text);
    EXPECT_EQ(b.decode(ids), text);
    bool valid = true;
    EXPECT_EQ(stream_decode(g, ids, &valid), text);
    EXPECT_TRUE(valid) << "[" << text << "]";
  }
  // The emoji text has no tokens of its own in 512 ids: it must have used byte fallback.
  const auto emoji = g.encode("\xF0\x9F\xA6\x99", false);
  ASSERT_EQ(emoji.size(), 5u);  // "▁" + 4 byte tokens
  for (size_t i = 1; i < emoji.size(); ++i) EXPECT_EQ(g.vocab().types[emoji[i]], static_cast<int32_t>(TokenType::Byte));
}

TEST(TokenizerConformance, Tok512DecodesTheGreedyGoldenText) {
  const auto ids = read_vocab_ids(kModelDir + "/stories260K.greedy.ids");
  ASSERT_EQ(ids.size(), 1u);
  ASSERT_EQ(ids[0].size(), 200u);
  const std::string golden = slurp(kModelDir + "/stories260K.greedy.txt");
  for (const Tokenizer* t : {&tok512_gguf(), &tok512_bin()}) {
    EXPECT_EQ(t->decode(ids[0]), golden);
    std::vector<int32_t> with_bos = {t->bos()};
    with_bos.insert(with_bos.end(), ids[0].begin(), ids[0].end());
    EXPECT_EQ(t->decode(with_bos), golden);
  }
}

TEST(Tokenizer, RandomBytesRoundTrip) {
  // Byte fallback (SPM) and the byte alphabet (BPE) make every byte string encodable, valid UTF-8
  // or not. The one exception is SPM's: a literal "▁" in the text is indistinguishable from a
  // space (SentencePiece and llama.cpp alike), so such strings are not generated.
  std::mt19937 rng(1234);
  const std::vector<std::string> atoms = {"a", "Z", " ", "  ", "\n", "\t", "'s", "3", ".", "\xC3\xA9", "\xE6\x97\xA5",
                                          "\xF0\x9F\xA6\x99", "\x80", "\xFF", "\xC3", "\xE2\x96", "\xED\xA0\x80", "<s>"};
  for (int n = 0; n < 300; ++n) {
    std::string s;
    const int len = static_cast<int>(rng() % 24);
    for (int k = 0; k < len; ++k) {
      if (rng() % 4 == 0)
        s += static_cast<char>(rng() % 256);
      else
        s += atoms[rng() % atoms.size()];
    }
    for (const Tokenizer* t : {&llama_spm(), &gpt2(), &tok512_gguf()}) {
      if (t->vocab().kind == TokenizerKind::Spm && s.find("\xE2\x96\x81") != std::string::npos) continue;
      for (bool add_special : {false, true}) {
        const auto ids = t->encode(s, add_special);
        for (int32_t id : ids) ASSERT_TRUE(t->valid(id));
        EXPECT_EQ(t->decode(ids), s) << "case " << n;
      }
    }
  }
}

TEST(Tokenizer, IllFormedUtf8BeforeASpaceIsLossless) {
  // A deliberate difference from llama.cpp, for ill-formed input only: it sizes a symbol by its lead
  // byte, so "\xF7" would swallow the escaped space after it and decode as raw "▁" bytes.
  const Tokenizer& t = llama_spm();
  for (std::string s : {"\xF7 a", "x\xE2\x96 y", "\xC3  z", "\xF0\x9F\xA6 "}) {
    const auto ids = t.encode(s, false);
    EXPECT_EQ(t.decode(ids), s);
  }
  const auto ids = t.encode("\xF7 a", false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(t.vocab().tokens[ids[1]], "<0xF7>");
  EXPECT_EQ(t.token_bytes(ids[2]), " a");
}

TEST(Tokenizer, SpecialTokensAreParsedOnlyWhenAsked) {
  const Tokenizer& spm = llama_spm();
  EXPECT_EQ(spm.encode("</s>", false, true), std::vector<int32_t>{2});
  const auto plain = spm.encode("</s>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(spm.decode(plain), "</s>");
  // llama.cpp prefixes a space to the text after a special token, as at the start of the text.
  auto expect = spm.encode("a", false);
  expect.push_back(2);
  const auto b = spm.encode("b", false);
  expect.insert(expect.end(), b.begin(), b.end());
  EXPECT_EQ(spm.encode("a</s>b", false, true), expect);

  const Tokenizer& bpe = gpt2();
  EXPECT_EQ(bpe.encode("<|endoftext|>", false, true), std::vector<int32_t>{50256});
  auto eot = bpe.encode("x<|endoftext|>y", false, true);
  ASSERT_EQ(eot.size(), 3u);
  EXPECT_EQ(eot[1], 50256);
  const auto text = bpe.encode("<|endoftext|>", false, false);
  EXPECT_GT(text.size(), 1u);
  EXPECT_EQ(bpe.decode(text), "<|endoftext|>");
  EXPECT_EQ(bpe.decode({50256}), "");
  EXPECT_EQ(bpe.decode({50256}, /*render_special=*/true), "<|endoftext|>");
}

TEST(Tokenizer, UserDefinedTokensAreAlwaysRecognised) {
  Vocab v;
  v.kind = TokenizerKind::Spm;
  v.tokens = {"<unk>", "<s>", "</s>", "<tool>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a"};
  v.scores = {0, 0, 0, 0, -1, -2, -3, -1};
  v.types = {2, 3, 3, 4, 1, 1, 1, 1};
  v.bos = 1, v.eos = 2, v.unk = 0;
  auto t = Tokenizer::create(v);
  ASSERT_TRUE(t.ok()) << t.error().message;
  // "<tool>" is cut out even without parse_special and decodes as its text; the text after it
  // gets the space prefix (llama.cpp).
  EXPECT_EQ(t->encode("a<tool>b", false, false), (std::vector<int32_t>{7, 3, 4, 6}));
  EXPECT_EQ(t->token_bytes(3), "<tool>");
  // Bytes without a byte token fall back to <unk>.
  EXPECT_EQ(t->encode("c", false), (std::vector<int32_t>{4, 0}));
}

TEST(Tokenizer, AddsBosAndEosAsTheVocabularyAsks) {
  Vocab v = llama_spm().vocab();
  v.add_eos = true;
  auto t = Tokenizer::create(v);
  ASSERT_TRUE(t.ok()) << t.error().message;
  const auto ids = t->encode("Hello");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(t->encode("Hello", false), std::vector<int32_t>(ids.begin() + 1, ids.end() - 1));
  EXPECT_EQ(t->decode(ids), "Hello");

  Vocab g = gpt2().vocab();
  g.add_bos = true;
  auto bt = Tokenizer::create(g);
  ASSERT_TRUE(bt.ok()) << bt.error().message;
  EXPECT_EQ(bt->encode("Hello").front(), 50256);
  EXPECT_EQ(gpt2().encode("Hello"), gpt2().encode("Hello", false));  // the real gpt-2 adds none
}

TEST(Tokenizer, TokenBytes) {
  const Tokenizer& spm = llama_spm();
  const auto nl = spm.encode("\n", false);
  ASSERT_EQ(nl.size(), 2u);
  EXPECT_EQ(spm.token_bytes(nl[1]), "\n");  // <0x0A>
  EXPECT_EQ(spm.vocab().tokens[nl[1]], "<0x0A>");
  const auto hello = spm.encode("Hello", false);
  ASSERT_EQ(hello.size(), 1u);
  EXPECT_EQ(spm.token_bytes(hello[0]), " Hello");  // "▁Hello"
  EXPECT_EQ(spm.token_bytes(1), "");
  EXPECT_EQ(spm.token_bytes(1, true), "<s>");
  EXPECT_EQ(spm.token_bytes(-1), "");
  EXPECT_EQ(spm.token_bytes(spm.n_vocab()), "");

  const Tokenizer& bpe = gpt2();
  const auto the = bpe.encode(" the", false);
  ASSERT_EQ(the.size(), 1u);
  EXPECT_EQ(bpe.vocab().tokens[the[0]], "\xC4\xA0the");  // "Ġthe"
  EXPECT_EQ(bpe.token_bytes(the[0]), " the");
  const auto nl2 = bpe.encode("\n", false);
  ASSERT_EQ(nl2.size(), 1u);
  EXPECT_EQ(bpe.vocab().tokens[nl2[0]], "\xC4\x8A");  // "Ċ"
  EXPECT_EQ(bpe.token_bytes(nl2[0]), "\n");
}

TEST(Tokenizer, EndOfGeneration) {
  EXPECT_TRUE(llama_spm().is_eog(2));
  EXPECT_FALSE(llama_spm().is_eog(1));
  EXPECT_FALSE(llama_spm().is_eog(500));
  EXPECT_FALSE(llama_spm().is_eog(-1));
  EXPECT_FALSE(llama_spm().is_eog(32000));
  EXPECT_TRUE(gpt2().is_eog(50256));
  EXPECT_FALSE(gpt2().is_eog(0));
}

TEST(Tokenizer, CreateRejectsBadVocabularies) {
  auto expect_error = [](Vocab v, const char* needle) {
    auto t = Tokenizer::create(std::move(v));
    ASSERT_FALSE(t.ok()) << needle;
    EXPECT_NE(t.error().message.find(needle), std::string::npos) << t.error().message;
  };
  Vocab base;
  base.kind = TokenizerKind::Spm;
  base.tokens = {"<unk>", "<s>", "</s>", "a"};
  base.scores = {0, 0, 0, 0};
  base.types = {2, 3, 3, 1};
  base.bos = 1, base.eos = 2, base.unk = 0;
  ASSERT_TRUE(Tokenizer::create(base).ok());

  Vocab v = base;
  v.tokens = {};
  v.scores = {}, v.types = {};
  expect_error(v, "empty");
  v = base;
  v.tokens[3] = "<s>";
  expect_error(v, "appears twice");
  v = base;
  v.scores.pop_back();
  expect_error(v, "scores");
  v = base;
  v.types.push_back(1);
  expect_error(v, "types");
  v = base;
  v.bos = 4;
  expect_error(v, "BOS token id 4");

  Vocab b = base;
  b.kind = TokenizerKind::Bpe;
  b.merges = {"a a"};
  b.pre = "some-future-pre";
  expect_error(b, "some-future-pre");
  b.pre = "gpt-2";
  b.merges = {"nospace"};
  expect_error(b, "merge 0");
}

TEST(Tokenizer, EncodeIsFast) {
  // About 2,000 tokens of mixed text (ASCII, accents, CJK, emoji); llama.cpp-class speed is well
  // under a millisecond per thousand tokens, the bound leaves room for a loaded CI machine.
  std::string text;
  for (int i = 0; i < 48; ++i)
    text += "The quick brown fox jumps over the lazy dog, and says: \"Hello, world!\" 12345 times. "
            "\xC3\x9Cn\xC3\xAF\x63\xC3\xB6\x64\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\xA6\x99\n";
  for (const Tokenizer* t : {&llama_spm(), &gpt2()}) {
    std::vector<int32_t> ids = t->encode(text);  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    const int reps = 10;
    for (int r = 0; r < reps; ++r) ids = t->encode(text);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    EXPECT_GT(ids.size(), 1800u);
    EXPECT_LT(ms, 25.0) << ids.size() << " tokens";
    EXPECT_EQ(t->decode(ids), text);
    std::printf("[ perf     ] %s: %zu tokens encoded in %.3f ms\n",
                t->vocab().kind == TokenizerKind::Spm ? "llama-spm" : "gpt-2", ids.size(), ms);
  }
}
