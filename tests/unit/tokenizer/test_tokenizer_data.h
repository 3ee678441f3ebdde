// Shared by the tokenizer tests: the real vocabularies and llama.cpp's expected tokenizations.
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "shard/tokenizer/tokenizer.h"

namespace tandem::testing {

inline const std::string kVocabTexts = std::string(TANDEM_TESTDATA) + "/vocab";
inline const std::string kRestoredVocabs = TANDEM_VOCAB_DIR;
inline const std::string kModelDir = std::string(TANDEM_TESTDATA) + "/models";

// Loaded once per test binary: the GPT-2 vocabulary alone is 100k strings.
inline const Tokenizer& tokenizer_for(const std::string& path) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[path];
  if (!slot) {
    auto v = load_vocab(path);
    if (!v) throw std::runtime_error(v.error().message);
    auto t = Tokenizer::create(std::move(*v));
    if (!t) throw std::runtime_error(t.error().message);
    slot = std::make_unique<Tokenizer>(std::move(*t));
  }
  return *slot;
}

inline const Tokenizer& llama_spm() { return tokenizer_for(kRestoredVocabs + "/ggml-vocab-llama-spm.gguf"); }
inline const Tokenizer& gpt2() { return tokenizer_for(kRestoredVocabs + "/ggml-vocab-gpt-2.gguf"); }
inline const Tokenizer& tok512_gguf() { return tokenizer_for(kModelDir + "/stories260K.gguf"); }
inline const Tokenizer& tok512_bin() { return tokenizer_for(kModelDir + "/tok512.bin"); }

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// llama.cpp's .inp format: each text is followed by a line "__ggml_vocab_test__"; the newline
// before that line is not part of the text.
inline std::vector<std::string> read_vocab_texts(const std::string& path) {
  std::istringstream in(slurp(path));
  std::vector<std::string> texts;
  std::string line, cur;
  bool open = false;
  while (std::getline(in, line)) {
    if (line == "__ggml_vocab_test__") {
      texts.push_back(cur);
      cur.clear();
      open = false;
    } else {
      cur += (open ? "\n" : "") + line;
      open = true;
    }
  }
  return texts;
}

// The .out format: one line per text, ids separated by spaces.
inline std::vector<std::vector<int32_t>> read_vocab_ids(const std::string& path) {
  std::istringstream in(slurp(path));
  std::vector<std::vector<int32_t>> out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

// Texts that exercise the SPM corner cases on the 512-token vocabulary.
inline std::vector<std::string> varied_texts() {
  return {"Once upon a time, there was a little girl named Lily.",
          "Hello, world! (punctuation) ... ?! -- 'quotes' \"double\" [brackets] {braces} #1 $2 %3",
          "caf\xC3\xA9 na\xC3\xAFve \xC3\x84pfel \xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 "
          "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",                                    // é ï Ä, Russian, Japanese
          "emoji \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80 and \xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F",  // needs byte fallback
          " leading space", "   three leading spaces", "trailing space ", "trailing spaces   ",
          "multiple   spaces   inside", "\tTab\tseparated\t", "line one\nline two\n\nline four\n", "\n",
          "\n\nstarts with newlines", " ", "  ", "", "a", "12345 67890 3.14159", "it's ok, isn't it? we'll see"};
}

}  // namespace tandem::testing
