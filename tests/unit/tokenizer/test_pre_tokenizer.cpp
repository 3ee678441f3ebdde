#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "shard/tokenizer/pre_tokenizer.h"
#include "shard/tokenizer/regex_split.h"
#include "tests/unit/tokenizer/test_tokenizer_data.h"

using namespace tandem;
using namespace tandem::testing;

namespace {

using Pieces = std::vector<std::string>;

Pieces split_with(const std::string& name, const std::string& text) {
  auto spec = find_pre_tokenizer(name);
  EXPECT_TRUE(spec.ok()) << name << ": " << (spec.ok() ? "" : spec.error().message);
  if (!spec.ok()) return {};
  std::vector<std::string> patterns((*spec)->regexes.begin(), (*spec)->regexes.end());
  auto s = RegexSplitter::compile(patterns);
  EXPECT_TRUE(s.ok()) << name << ": " << (s.ok() ? "" : s.error().message);
  if (!s.ok()) return {};
  Pieces out;
  for (auto p : s->split(text)) out.emplace_back(p);
  return out;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

// Every name compiles, and every split of a text that touches every class cuts it without losing
// or adding a byte.
TEST(PreTokenizer, EveryNameCompilesAndSplitsLosslessly) {
  const std::string text =
      "Hello World's 1234567 x=1+2; \t\n\n  日本語テキスト 한국어 Привет ΐώ ῼ ǅ 😀👍🏽 «ok» …。，\r\nDON'T a.b ";
  const auto names = supported_pre_tokenizers();
  ASSERT_GE(names.size(), 50u);
  for (const auto& name : names) {
    const Pieces p = split_with(name, text);
    std::string joined;
    for (const auto& s : p) {
      EXPECT_FALSE(s.empty()) << name;
      joined += s;
    }
    EXPECT_EQ(joined, text) << name;
    EXPECT_GT(p.size(), 10u) << name;
  }
}

TEST(PreTokenizer, TheIssuesFamiliesAreAllThere) {
  for (const char* name : {"llama-bpe", "llama3", "qwen2", "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon",
                           "falcon3", "smollm", "starcoder", "refact", "command-r", "tekken", "gpt-4o", "olmo",
                           "chatglm-bpe", "gpt-2", "default", "deepseek-r1-qwen", "llama4", "dbrx", "bloom"}) {
    auto spec = find_pre_tokenizer(name);
    EXPECT_TRUE(spec.ok()) << name << ": " << (spec.ok() ? "" : spec.error().message);
  }
  // No key at all is llama.cpp's "default".
  auto none = find_pre_tokenizer("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)->names[0], "default");
}

TEST(PreTokenizer, UnknownNamesAreRefusedNamingThemAndTheSupportedOnes) {
  auto r = find_pre_tokenizer("no-such-pre");
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message;
  EXPECT_TRUE(contains(m, "'no-such-pre' is not supported")) << m;
  for (const char* name : {"llama-bpe", "qwen2", "deepseek-coder", "tekken", "gpt-4o", "chatglm-bpe", "default"})
    EXPECT_TRUE(contains(m, name)) << name << " missing from: " << m;
  // Known to llama.cpp but not implemented here: the reason is given.
  auto k = find_pre_tokenizer("kimi-k2");
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(contains(k.error().message, "'kimi-k2' is not supported: llama.cpp splits it with a hand-written matcher"))
      << k.error().message;
  // Names are exact.
  EXPECT_FALSE(find_pre_tokenizer("Qwen2").ok());
  EXPECT_FALSE(find_pre_tokenizer("qwen2 ").ok());
}

TEST(PreTokenizer, DigitGroupingPerFamily) {
  // LLaMA 3 groups digits by three, Qwen2 / DeepSeek Coder / StarCoder take one at a time,
  // GPT-2 keeps the run, the default and Falcon cut runs into threes after GPT-2's split.
  EXPECT_EQ(split_with("llama-bpe", "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(split_with("qwen2", "1234567"), (Pieces{"1", "2", "3", "4", "5", "6", "7"}));
  EXPECT_EQ(split_with("deepseek-coder", "12345"), (Pieces{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(split_with("deepseek-v3", "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(split_with("deepseek-llm", "1234567"), (Pieces{"1234567"}));
  EXPECT_EQ(split_with("starcoder", "abc123"), (Pieces{"abc", "1", "2", "3"}));
  EXPECT_EQ(split_with("starcoder", " 12"), (Pieces{" ", "1", "2"}));
  EXPECT_EQ(split_with("gpt-2", " 12345"), (Pieces{" 12345"}));
  EXPECT_EQ(split_with("default", "12345"), (Pieces{"123", "45"}));
  EXPECT_EQ(split_with("falcon", "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(split_with("tekken", "12"), (Pieces{"1", "2"}));
  EXPECT_EQ(split_with("gpt-4o", "12345"), (Pieces{"123", "45"}));
  EXPECT_EQ(split_with("viking", "abc123"), (Pieces{"abc", "1", "2", "3"}));
  EXPECT_EQ(split_with("bailingmoe", "x1234y"), (Pieces{"x", "1", "2", "3", "4", "y"}));
  EXPECT_EQ(split_with("seed-coder", "a123"), (Pieces{"a", "1", "2", "3"}));
}

TEST(PreTokenizer, WordsPunctuationAndWhitespacePerFamily) {
  EXPECT_EQ(split_with("llama-bpe", "Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(split_with("llama-bpe", "I'M  x"), (Pieces{"I", "'M", " ", " x"}));  // case-insensitive 'm
  EXPECT_EQ(split_with("gpt-2", "I'M"), (Pieces{"I", "'", "M"}));                // GPT-2's is lower-case only
  EXPECT_EQ(split_with("gpt-2", "Hello, world!"), (Pieces{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split_with("llama-bpe", "x.\n"), (Pieces{"x", ".\n"}));
  EXPECT_EQ(split_with("seed-coder", "x.\n"), (Pieces{"x", ".", "\n"}));  // no newline after punctuation
  EXPECT_EQ(split_with("falcon", "a+b"), (Pieces{"a", "+", "b"}));
  EXPECT_EQ(split_with("bloom", "Hello, world!"), (Pieces{"Hello", ",", " world", "!"}));
  // DeepSeek Coder: newlines alone, words with one leading space, CJK runs apart from the space.
  EXPECT_EQ(split_with("deepseek-coder", "Hello \xE4\xB8\x96\xE7\x95\x8C" "123\n"),
            (Pieces{"Hello", " ", "\xE4\xB8\x96\xE7\x95\x8C", "1", "2", "3", "\n"}));
  // DeepSeek LLM: only cased letters make words; CJK is its own run, digits another.
  EXPECT_EQ(split_with("deepseek-llm", "Hello, \xE4\xB8\x96\xE7\x95\x8C 123"),
            (Pieces{"Hello", ",", " ", "\xE4\xB8\x96\xE7\x95\x8C", " ", "123"}));
  // U+1F7D (Greek omega with oxia) and U+212A (Kelvin sign) are cased letters of its class.
  EXPECT_EQ(split_with("deepseek-llm", "\xE1\xBD\xBD\xE2\x84\xAA"), (Pieces{"\xE1\xBD\xBD\xE2\x84\xAA"}));
  // DeepSeek V3: digits by three, kana and kanji runs, then the word regex.
  EXPECT_EQ(split_with("deepseek-v3", "1234567 \xE6\x97\xA5\xE6\x9C\xAC\xE3\x83\x86\xE3\x82\xAD hello"),
            (Pieces{"123", "456", "7", " ", "\xE6\x97\xA5\xE6\x9C\xAC\xE3\x83\x86\xE3\x82\xAD", " hello"}));
  // Tekken and GPT-4o cut camel case; GPT-4o keeps a contraction on its word.
  EXPECT_EQ(split_with("tekken", "HelloWorld"), (Pieces{"Hello", "World"}));
  EXPECT_EQ(split_with("gpt-4o", "HelloWorld's 12345"), (Pieces{"Hello", "World's", " ", "123", "45"}));
  EXPECT_EQ(split_with("chameleon", "a1b"), (Pieces{"a", "1", "b"}));
}

TEST(PreTokenizer, FlagsAsLlamaCppSetsThem) {
  auto flags = [](const char* name) {
    auto s = find_pre_tokenizer(name);
    EXPECT_TRUE(s.ok()) << name;
    return s.ok() ? std::vector<bool>{(*s)->ignore_merges, (*s)->add_bos, (*s)->no_bos} : std::vector<bool>{};
  };
  EXPECT_EQ(flags("llama-bpe"), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(flags("falcon3"), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(flags("tekken"), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(flags("dbrx"), (std::vector<bool>{false, false, false}));
  EXPECT_EQ(flags("qwen2"), (std::vector<bool>{false, false, false}));
  EXPECT_EQ(flags("chatglm-bpe"), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(flags("chameleon"), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(flags("gpt-2"), (std::vector<bool>{false, false, false}));
}

TEST(PreTokenizer, RecognisedFromTokenizerJsonPatterns) {
  const std::string hf_llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const std::string hf_qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  EXPECT_EQ(pre_tokenizer_for_hf_patterns({hf_llama3}), "llama-bpe");
  EXPECT_EQ(pre_tokenizer_for_hf_patterns({hf_qwen2}), "qwen2");
  EXPECT_EQ(pre_tokenizer_for_hf_patterns({std::string(kHfByteLevelRegex)}), "gpt-2");
  EXPECT_EQ(pre_tokenizer_for_hf_patterns({std::string(kHfDigitsRegex), std::string(kHfByteLevelRegex)}), "starcoder");
  // DeepSeek V3's tokenizer.json holds the CJK ranges as characters, not \x{} escapes.
  EXPECT_EQ(pre_tokenizer_for_hf_patterns(
                {R"(\p{N}{1,3})", "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+",
                 R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}),
            "deepseek-v3");
  // DeepSeek Coder's first split is "[\r\n]" with the characters themselves.
  EXPECT_EQ(pre_tokenizer_for_hf_patterns({"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)",
                                           "[\xE4\xB8\x80-\xE9\xBE\xA5\xE0\xA0\x80-\xE4\xB8\x80\xEA\xB0\x80-\xED\x9F\xBF]+",
                                           R"(\p{N})"}),
            "deepseek-coder");
  EXPECT_EQ(pre_tokenizer_for_hf_patterns({hf_llama3 + "x"}), "");
  EXPECT_EQ(pre_tokenizer_for_hf_patterns({hf_qwen2, std::string(kHfByteLevelRegex)}), "");
  EXPECT_EQ(pre_tokenizer_for_hf_patterns({}), "");
}

// The issue's first complaint: a GGUF with one of these names was refused. Now it loads and
// splits as its name says (the GPT-2 vocabulary under other pre-tokenizers).
TEST(PreTokenizer, TokenizerUsesTheNamedSplit) {
  Vocab v = gpt2().vocab();
  ASSERT_EQ(v.pre, "gpt-2");
  auto g = Tokenizer::create(v);
  ASSERT_TRUE(g.ok());
  const auto run = g->encode("12345", false);
  for (const char* name : {"deepseek-coder", "qwen2", "starcoder"}) {
    v.pre = name;
    auto t = Tokenizer::create(v);
    ASSERT_TRUE(t.ok()) << name << ": " << t.error().message;
    const auto ids = t->encode("12345", false);
    ASSERT_EQ(ids.size(), 5u) << name;
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(ids[i], t->encode(std::string(1, "12345"[i]), false).at(0)) << name;
    EXPECT_EQ(t->decode(ids), "12345");
    EXPECT_NE(ids, run);
  }
  v.pre = "kimi-k2";
  auto bad = Tokenizer::create(v);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(contains(bad.error().message, "'kimi-k2' is not supported")) << bad.error().message;

  // The name's BOS defaults apply when the file does not say: LLaMA 3's adds one, ChatGLM's has none.
  v = gpt2().vocab();
  v.add_bos_from_file = v.bos_from_file = false;
  v.add_bos = false;
  v.pre = "llama-bpe";
  auto l3 = Tokenizer::create(v);
  ASSERT_TRUE(l3.ok()) << l3.error().message;
  EXPECT_TRUE(l3->vocab().add_bos);
  EXPECT_EQ(l3->encode("hi").front(), l3->bos());
  v.add_bos_from_file = true;  // the file's add_bos_token = false wins
  auto l3f = Tokenizer::create(v);
  ASSERT_TRUE(l3f.ok());
  EXPECT_FALSE(l3f->vocab().add_bos);
  v = gpt2().vocab();
  v.bos_from_file = false;
  v.pre = "chatglm-bpe";
  auto glm = Tokenizer::create(v);
  ASSERT_TRUE(glm.ok()) << glm.error().message;
  EXPECT_EQ(glm->bos(), -1);
  v.bos_from_file = true;
  auto glm_file = Tokenizer::create(v);
  ASSERT_TRUE(glm_file.ok());
  EXPECT_EQ(glm_file->bos(), gpt2().bos());
}
