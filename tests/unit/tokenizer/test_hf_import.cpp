#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "shard/format/gguf_writer.h"
#include "shard/tokenizer/chat_template.h"
#include "shard/tokenizer/hf_import.h"
#include "shard/tokenizer/tokenizer.h"
#include "tests/unit/test_paths.h"

using namespace tandem;
using namespace tandem::testing;
using nlohmann::json;

namespace {

const std::string kQwenSplit =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A small byte-level BPE tokenizer.json: "Ġ" is the byte-level space.
json tiny_tokenizer(bool array_merges = false) {
  json merges = array_merges ? json::array({json::array({"a", "b"}), json::array({"\xC4\xA0", "ab"}), json::array({"c", "c"})})
                             : json::array({"a b", "\xC4\xA0 ab", "c c"});
  return {
      {"version", "1.0"},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", kQwenSplit}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}})}}},
      {"model",
       {{"type", "BPE"},
        {"ignore_merges", false},
        {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"\xC4\xA0", 3}, {"ab", 4}, {"\xC4\xA0" "ab", 5}, {"cc", 6}, {"1", 7}}},
        {"merges", merges}}},
      {"added_tokens",
       json::array({{{"id", 8}, {"content", "<|endoftext|>"}, {"special", true}},
                    {{"id", 9}, {"content", "<think>"}, {"special", false}},
                    {{"id", 10}, {"content", "<|im_end|>"}, {"special", false}},
                    {{"id", 12}, {"content", "<s>"}, {"special", true}}})},
  };
}

json tiny_config() {
  return {{"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
          {"eos_token", "<|im_end|>"},
          {"pad_token", "<|endoftext|>"},
          {"add_bos_token", true},
          {"chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}"}};
}

Result<HfTokenizer> import(const json& t, const json& c = json(), const std::string& pre = "") {
  HfImportOptions o;
  o.pre = pre;
  return import_hf_tokenizer(t.dump(), c.is_null() ? std::string() : c.dump(), o);
}

void expect_error(const Result<HfTokenizer>& r, const std::vector<std::string>& parts) {
  ASSERT_FALSE(r.ok());
  for (const auto& p : parts) EXPECT_NE(r.error().message.find(p), std::string::npos) << p << " in: " << r.error().message;
}

}  // namespace

TEST(HfImport, TokensTypesMergesAndSpecialTokens) {
  auto r = import(tiny_tokenizer(), tiny_config());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Vocab& v = r->vocab;
  EXPECT_EQ(v.kind, TokenizerKind::Bpe);
  EXPECT_EQ(v.pre, "qwen2");
  ASSERT_EQ(v.tokens.size(), 13u);
  EXPECT_EQ(v.tokens[5], "\xC4\xA0" "ab");
  EXPECT_EQ(v.merges, (std::vector<std::string>{"a b", "\xC4\xA0 ab", "c c"}));
  auto type = [&](int id) { return static_cast<TokenType>(v.types[id]); };
  EXPECT_EQ(type(0), TokenType::Normal);
  EXPECT_EQ(type(8), TokenType::Control);       // special
  EXPECT_EQ(type(9), TokenType::UserDefined);   // added, not special
  EXPECT_EQ(type(10), TokenType::Control);      // not marked special but looks it
  EXPECT_EQ(v.tokens[11], "[PAD11]");           // no token has id 11
  EXPECT_EQ(type(11), TokenType::Unused);
  EXPECT_EQ(v.bos, 12);
  EXPECT_EQ(v.eos, 10);
  EXPECT_EQ(v.pad, 8);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.add_bos_from_file);
  EXPECT_EQ(r->chat_template, "{% for m in messages %}{{ m.content }}{% endfor %}");
  EXPECT_TRUE(r->warnings.size() == 1 && r->warnings[0].find("[PAD<id>]") != std::string::npos);

  // Both spellings of merges give the same vocabulary.
  auto arr = import(tiny_tokenizer(true), tiny_config());
  ASSERT_TRUE(arr.ok()) << arr.error().message;
  EXPECT_EQ(arr->vocab.merges, v.merges);
  EXPECT_EQ(arr->vocab.tokens, v.tokens);
}

TEST(HfImport, WrittenGgufLoadsAndTokenizes) {
  auto r = import(tiny_tokenizer(), tiny_config());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::string path = std::string(TANDEM_TEST_WORK) + "/" + per_test_name("hf_import") + ".gguf";
  ASSERT_TRUE(write_gguf(path, hf_tokenizer_metadata(*r), {}).ok());
  auto f = open_gguf(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_NE(f->get_string(kChatTemplateKey), std::nullopt);
  EXPECT_EQ(*f->get_string(kChatTemplateKey), r->chat_template);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), std::optional<std::string>("gpt2"));
  EXPECT_EQ(f->get_string("tokenizer.ggml.pre"), std::optional<std::string>("qwen2"));
  auto v = vocab_from_gguf(*f);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->tokens, r->vocab.tokens);
  EXPECT_EQ(v->types, r->vocab.types);
  EXPECT_EQ(v->merges, r->vocab.merges);
  EXPECT_EQ(v->bos, 12);
  EXPECT_EQ(v->eos, 10);
  EXPECT_TRUE(v->add_bos);
  auto t = Tokenizer::create(std::move(*v));
  ASSERT_TRUE(t.ok()) << t.error().message;
  // " ab" is one token by the merges, digits one at a time (qwen2), <think> always recognised,
  // <|im_end|> only with parse_special.
  EXPECT_EQ(t->encode("ab ab", false), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(t->encode("ab<think>cc11", false), (std::vector<int32_t>{4, 9, 6, 7, 7}));
  EXPECT_EQ(t->encode("ab<|im_end|>", false, true), (std::vector<int32_t>{4, 10}));
  EXPECT_EQ(t->encode("ab", true), (std::vector<int32_t>{12, 4}));
  EXPECT_EQ(t->decode({4, 9, 5, 10}, true), "ab<think> ab<|im_end|>");
}

TEST(HfImport, PostProcessorAndConfigDecideBos) {
  // A TemplateProcessing post-processor that starts with a special token: that token is BOS, added.
  json t = tiny_tokenizer();
  t["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}};
  auto r = import(t);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->vocab.bos, 12);
  EXPECT_TRUE(r->vocab.add_bos && r->vocab.add_bos_from_file);
  EXPECT_EQ(r->vocab.eos, -1);
  EXPECT_TRUE(r->chat_template.empty());
  // tokenizer_config.json's add_bos_token overrides it.
  json c = {{"add_bos_token", false}};
  auto off = import(t, c);
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_FALSE(off->vocab.add_bos);
  EXPECT_TRUE(off->vocab.add_bos_from_file);
  // Neither: the key is left out, so the pre-tokenizer's default applies when read.
  auto none = import(tiny_tokenizer(), json{{"eos_token", "<|endoftext|>"}});
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->vocab.add_bos_from_file);
  bool has_key = false;
  for (const auto& [k, val] : hf_tokenizer_metadata(*none)) has_key |= k == "tokenizer.ggml.add_bos_token";
  EXPECT_FALSE(has_key);
  // Named templates (a list in tokenizer_config.json): "default" is the template, the rest named.
  json named = {{"chat_template", json::array({{{"name", "default"}, {"template", "D"}}, {{"name", "tool_use"}, {"template", "T"}}})}};
  auto n = import(tiny_tokenizer(), named);
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(n->chat_template, "D");
  ASSERT_EQ(n->named_templates.size(), 1u);
  EXPECT_EQ(n->named_templates[0], (std::pair<std::string, std::string>{"tool_use", "T"}));
  bool named_key = false;
  for (const auto& [k, val] : hf_tokenizer_metadata(*n)) named_key |= k == "tokenizer.chat_template.tool_use";
  EXPECT_TRUE(named_key);
}

TEST(HfImport, PreTokenizerRecognitionAndOverride) {
  json t = tiny_tokenizer();
  // GPT-2's ByteLevel with its own regex.
  t["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  auto g = import(t);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->vocab.pre, "gpt-2");
  // Digits + ByteLevel: StarCoder's family.
  t["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}},
                                                       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}})}};
  auto s = import(t);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->vocab.pre, "starcoder");
  // An unknown split is refused, naming it and --pre; --pre imports it anyway.
  t = tiny_tokenizer();
  t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{L}+|\\p{N}{1,2}";
  expect_error(import(t), {"tokenizer.json", "\\p{L}+|\\p{N}{1,2}", "--pre", "llama-bpe", "qwen2"});
  auto forced = import(t, json(), "deepseek-coder");
  ASSERT_TRUE(forced.ok()) << forced.error().message;
  EXPECT_EQ(forced->vocab.pre, "deepseek-coder");
  expect_error(import(t, json(), "nope"), {"'nope' is not supported"});
  // llama-bpe ignores merges; a tokenizer.json that does not is imported with a warning.
  auto l3 = import(tiny_tokenizer(), json(), "llama-bpe");
  ASSERT_TRUE(l3.ok());
  bool warned = false;
  for (const auto& w : l3->warnings) warned |= w.find("ignore_merges") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(HfImport, RefusesWhatItCannotReproduce) {
  json t = tiny_tokenizer();
  t["model"]["type"] = "Unigram";
  expect_error(import(t), {"model.type is 'Unigram'", "byte-level BPE"});
  t = tiny_tokenizer();
  t["model"]["merges"][1] = "nospace";
  expect_error(import(t), {"model.merges[1]", "'left right'"});
  t = tiny_tokenizer();
  t["model"]["merges"] = json::array();
  expect_error(import(t), {"model.merges is missing or empty"});
  t = tiny_tokenizer();
  t["normalizer"] = {{"type", "Lowercase"}};
  expect_error(import(t), {"normalizer 'Lowercase'"});
  t = tiny_tokenizer();
  t["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect_error(import(t), {"pre_tokenizer 'Metaspace'"});
  t = tiny_tokenizer();
  t["pre_tokenizer"]["pretokenizers"].erase(1);
  expect_error(import(t), {"no ByteLevel step"});
  t = tiny_tokenizer();
  t["model"]["vocab"]["dup"] = 0;
  expect_error(import(t), {"model.vocab gives id 0"});
  expect_error(import(tiny_tokenizer(), json{{"eos_token", "<|missing|>"}}), {"tokenizer_config.json", "'<|missing|>'"});
  expect_error(import(tiny_tokenizer(), json{{"add_bos_token", "yes"}}), {"add_bos_token is not a boolean"});
  expect_error(import(tiny_tokenizer(), json{{"add_bos_token", true}}), {"no bos_token"});
  auto bad = import_hf_tokenizer("{not json", "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("tokenizer.json: not valid JSON"), std::string::npos) << bad.error().message;
  // An NFC normalizer is accepted (llama.cpp does not apply it either), with a warning.
  t = tiny_tokenizer();
  t["normalizer"] = {{"type", "NFC"}};
  auto nfc = import(t);
  ASSERT_TRUE(nfc.ok()) << nfc.error().message;
  bool warned = false;
  for (const auto& w : nfc->warnings) warned |= w.find("NFC") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(HfImport, WronglyTypedFieldsAreErrorsNotCrashes) {
  json t = tiny_tokenizer();
  t["added_tokens"][0]["special"] = "yes";
  expect_error(import(t), {"tokenizer.json", "unexpected type"});
  t = tiny_tokenizer();
  t["normalizer"] = "NFC";
  expect_error(import(t), {"tokenizer.json"});
  t = tiny_tokenizer();
  t["pre_tokenizer"]["pretokenizers"][0]["behavior"] = 3;
  expect_error(import(t), {"tokenizer.json"});
  t = tiny_tokenizer();
  t["pre_tokenizer"]["pretokenizers"] = json::array({1, 2});
  expect_error(import(t), {"tokenizer.json"});
  t = tiny_tokenizer();
  t["model"]["merges"] = json::array({json::array({"a", 1})});
  expect_error(import(t), {"model.merges[0]"});
  expect_error(import(tiny_tokenizer(), json{{"chat_template", 5}}), {"chat_template"});
  expect_error(import(tiny_tokenizer(), json{{"bos_token", 5}}), {"bos_token"});
  // Random single-character corruptions of a valid file: always an error or a result, never a crash.
  const std::string good = tiny_tokenizer().dump();
  uint32_t seed = 12345;
  int errors = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bad = good;
    seed = seed * 1664525u + 1013904223u;
    bad[seed % bad.size()] = "{}[]\",:0a \\"[(seed >> 16) % 11];
    errors += !import_hf_tokenizer(bad, "").ok();
  }
  EXPECT_GT(errors, 100);
}
