// The table of BPE pre-tokenizers. Regexes are llama.cpp's regex_exprs for each
// LLAMA_VOCAB_PRE_TYPE_* (src/llama-vocab.cpp), written as PCRE2 patterns (non-ASCII characters
// as \x{...}); the names and flags are those its vocabulary loader maps each tokenizer.ggml.pre to.
#include "shard/tokenizer/pre_tokenizer.h"

#include <array>
#include <charconv>
#include <cstdint>

#include "shard/tokenizer/utf8.h"

namespace tandem {
namespace {

// GPT-2's expression as llama.cpp writes it (without the final \s+ tokenizer.json has: the only
// text it leaves unmatched is a single whitespace before a non-space, which the splitter keeps as
// a piece of its own either way).
constexpr std::string_view kGpt2 = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re";
// LLaMA 3's, with llama.cpp's case-insensitive contractions spelled out (no (?i:) in std::regex).
constexpr std::string_view kLlama3 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
// Qwen2's: LLaMA 3's with single digits.
constexpr std::string_view kQwen2 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kBloom = R"re( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)re";

// tokenizer.json's own spellings.
constexpr std::string_view kHfLlama3 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kHfQwen2 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// DeepSeek LLM's cased letters (Unicode LC) and punctuation, DeepSeek Coder's and V3's CJK runs.
constexpr std::string_view kDeepseekLlmLetters =
    R"re(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)re";
constexpr std::string_view kDeepseekLlmPunct =
    R"re(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)re";
constexpr std::string_view kDeepseekCjk = R"re([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)re";
constexpr std::string_view kDeepseekV3Cjk = R"re([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)re";
constexpr std::string_view kDeepseekV3Main =
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// Tekken (Mistral Nemo) and GPT-4o (o200k): llama.cpp replaces the upper/lower-case classes
// \p{Lu}... (which std::regex lacks) by "a letter that is not a-z" / "not A-Z".
constexpr std::string_view kTekken =
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kHfTekken =
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kGpt4o =
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kHfGpt4o =
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

constexpr std::string_view kBailing =
    R"re('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)re";
constexpr std::string_view kSeedCoder =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kHfSeedCoder =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re";

const std::vector<PreTokenizerSpec>& table() {
  static const std::vector<PreTokenizerSpec> t = {
      {{"default"}, {R"re([\p{P}\$\+<=>\^~\|]+)re", kGpt2, R"re(\p{N}+)re", "[0-9][0-9][0-9]"}, {}},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
       {kLlama3},
       {kHfLlama3},
       /*ignore_merges=*/true,
       /*add_bos=*/true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}, {kHfLlama3}},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "megrez", "stablelm2", "hunyuan", "grok-2"}, {kQwen2}, {kHfQwen2}},
      {{"deepseek-llm"},
       {"[\\r\\n]", kDeepseekLlmLetters, kDeepseekLlmPunct, R"re(\s+$)re", kDeepseekCjk, R"re(\p{N}+)re"},
       {"[\\r\\n]", kDeepseekLlmLetters, kDeepseekLlmPunct, R"re(\s+$)re", kDeepseekCjk, R"re(\p{N}+)re"}},
      {{"deepseek-coder"},
       {"[\\r\\n]", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", kDeepseekCjk, R"re(\p{N})re"},
       {"[\\r\\n]", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", kDeepseekCjk, R"re(\p{N})re"}},
      {{"deepseek-v3", "hunyuan-dense"},
       {R"re(\p{N}{1,3})re", kDeepseekV3Cjk, kDeepseekV3Main},
       {R"re(\p{N}{1,3})re", kDeepseekV3Cjk, kDeepseekV3Main}},
      {{"falcon"}, {R"re([\p{P}\$\+<=>\^~\|`]+)re", kGpt2, "[0-9][0-9][0-9]"}, {}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {R"re(\p{N})re", kGpt2},
       {kHfDigitsRegex, kHfByteLevelRegex}},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "exaone4",
        "mpt", "olmo", "jais", "trillion", "granite-docling"},
       {kGpt2},
       {kHfByteLevelRegex}},
      {{"chatglm-bpe", "glm4"}, {kLlama3}, {}, false, false, /*no_bos=*/true},
      {{"bloom", "poro-chat", "gpt3-finnish"}, {kBloom}, {kBloom}},
      {{"viking"}, {kBloom, R"re(\p{N})re"}, {kBloom, kHfDigitsRegex}},
      {{"tekken"}, {kTekken}, {kHfTekken}, /*ignore_merges=*/true, /*add_bos=*/true},
      {{"gpt-4o", "llama4", "minimax-m2"}, {kGpt4o}, {kHfGpt4o}},
      {{"chameleon"},
       {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", R"re(([\t\n]|    |  ))re", R"re(\p{N})re",
        R"re([\p{P}!-/:-@\[-`{-~])re", kGpt2},
       {},
       false,
       /*add_bos=*/true},
      {{"bailingmoe", "bailingmoe2", "llada-moe"}, {kBailing}, {}},
      {{"seed-coder"}, {kSeedCoder}, {kHfSeedCoder}},
  };
  return t;
}

// Names llama.cpp knows but tandem does not implement, and why.
struct Unsupported {
  std::string_view name, reason;
};
constexpr std::array<Unsupported, 6> kUnsupported = {{
    {"kimi-k2", "llama.cpp splits it with a hand-written matcher"},
    {"afmoe", "llama.cpp splits its digits with a hand-written matcher"},
    {"superbpe", "its digit-grouping split is a zero-width lookahead"},
    {"jina-v1-en", "it is an embedding model's vocabulary (a SEP token after the text)"},
    {"jina-v2-code", "it is an embedding model's vocabulary (a SEP token after the text)"},
    {"roberta-bpe", "it is an embedding model's vocabulary (a SEP token after the text)"},
}};

// Spells \x{...}, \r, \n and \t escapes as the characters, so the table's escaped patterns
// compare equal to whatever mix of escapes and literal characters tokenizer.json holds.
std::string expand_escapes(std::string_view p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != '\\' || i + 1 == p.size()) {
      out += p[i];
      continue;
    }
    const char e = p[i + 1];
    if (e == 'r' || e == 'n' || e == 't') {
      out += e == 'r' ? '\r' : e == 'n' ? '\n' : '\t';
      ++i;
      continue;
    }
    if (e == 'x' && i + 2 < p.size() && p[i + 2] == '{') {
      const size_t close = p.find('}', i + 3);
      uint32_t cp = 0;
      if (close != std::string_view::npos) {
        const auto [ptr, ec] = std::from_chars(p.data() + i + 3, p.data() + close, cp, 16);
        if (ec == std::errc() && ptr == p.data() + close && cp <= 0x10FFFF) {
          append_utf8(out, cp);
          i = close;
          continue;
        }
      }
    }
    out += p[i];
    out += p[++i];  // any other escape (an escaped backslash too) stays as it is
  }
  return out;
}

}  // namespace

const std::vector<PreTokenizerSpec>& pre_tokenizer_table() { return table(); }

Result<const PreTokenizerSpec*> find_pre_tokenizer(std::string_view name) {
  const std::string_view key = name.empty() ? std::string_view("default") : name;
  for (const auto& spec : table())
    for (std::string_view n : spec.names)
      if (n == key) return &spec;
  for (const auto& u : kUnsupported)
    if (u.name == key)
      return make_error("BPE pre-tokenizer '{}' is not supported: {} (supported: {})", name, u.reason,
                        supported_pre_tokenizers_text());
  return make_error("BPE pre-tokenizer '{}' is not supported (supported: {})", name, supported_pre_tokenizers_text());
}

std::vector<std::string> supported_pre_tokenizers() {
  std::vector<std::string> out;
  for (const auto& spec : table())
    for (std::string_view n : spec.names) out.emplace_back(n);
  return out;
}

std::string supported_pre_tokenizers_text() {
  std::string s;
  for (const auto& spec : table()) {
    if (!s.empty()) s += ", ";
    s += spec.names[0];
    if (spec.names.size() > 1) {
      s += " (";
      for (size_t i = 1; i < spec.names.size(); ++i) {
        if (i > 1) s += ", ";
        s += spec.names[i];
      }
      s += ")";
    }
  }
  return s;
}

std::string_view pre_tokenizer_for_hf_patterns(const std::vector<std::string>& patterns) {
  for (const auto& spec : table()) {
    if (spec.hf_patterns.empty() || spec.hf_patterns.size() != patterns.size()) continue;
    bool same = true;
    for (size_t i = 0; i < patterns.size() && same; ++i)
      same = expand_escapes(spec.hf_patterns[i]) == expand_escapes(patterns[i]);
    if (same) return spec.names[0];
  }
  return {};
}

}  // namespace tandem
