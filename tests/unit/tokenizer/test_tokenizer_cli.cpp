#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>

#include "tests/unit/tokenizer/test_tokenizer_data.h"
#include "tests/unit/test_paths.h"

using namespace tandem;
using namespace tandem::testing;

namespace {

struct Run {
  int code;
  std::string out, err;
};

// Runs `tandem <args>` with stdin from `input` (a file path, or none).
Run run(const std::string& args, const std::string& input = "") {
  static int n = 0;
  const std::string base =
      std::string(TANDEM_TEST_WORK) + "/" + per_test_name("tokenize_cli") + "_" + std::to_string(n++);
  std::string cmd = std::string(TANDEM_BIN) + " " + args + " >" + base + ".out 2>" + base + ".err";
  cmd += input.empty() ? " </dev/null" : " <'" + input + "'";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(base + ".out"), slurp(base + ".err")};
}

std::string ids_line(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s + "\n";
}

}  // namespace

TEST(TokenizerCli, TokenizeReproducesLlamaCppOutFiles) {
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"}) {
    auto r = run("model tokenize " + kRestoredVocabs + "/" + name, kVocabTexts + "/" + name + ".inp");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, slurp(kVocabTexts + "/" + name + ".out")) << name;
  }
}

TEST(TokenizerCli, TokenizeTextWithAndWithoutBos) {
  const std::string text = "Once upon a time";
  for (const std::string& file : {kModelDir + "/tok512.bin", kModelDir + "/stories260K.gguf"}) {
    auto r = run("model tokenize " + file + " --text '" + text + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, ids_line(tok512_bin().encode(text, true)));
    auto nb = run("model tokenize " + file + " --text '" + text + "' --no-bos");
    ASSERT_EQ(nb.code, 0) << nb.err;
    EXPECT_EQ(nb.out, ids_line(tok512_bin().encode(text, false)));
  }
  auto sp = run("model tokenize " + kModelDir + "/tok512.bin --text '<s>hi' --no-bos --parse-special");
  ASSERT_EQ(sp.code, 0) << sp.err;
  EXPECT_EQ(sp.out.rfind(" 1 ", 0), 0u) << sp.out;
}

TEST(TokenizerCli, DetokenizeIdsAndStdin) {
  const std::string golden = slurp(kModelDir + "/stories260K.greedy.txt");
  auto r = run("model detokenize " + kModelDir + "/stories260K.gguf", kModelDir + "/stories260K.greedy.ids");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, golden + "\n");

  const auto ids = gpt2().encode("Hello, world!", false);
  std::string arg;
  for (int32_t id : ids) arg += std::to_string(id) + " ";
  auto g = run("model detokenize " + kRestoredVocabs + "/ggml-vocab-gpt-2.gguf --ids '" + arg + "'");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, "Hello, world!\n");

  auto special = run("model detokenize " + kModelDir + "/tok512.bin --ids '1 2' --render-special");
  ASSERT_EQ(special.code, 0) << special.err;
  EXPECT_EQ(special.out, "<s></s>\n");
}

TEST(TokenizerCli, BadInputIsAClearError) {
  auto bad_id = run("model detokenize " + kModelDir + "/tok512.bin --ids '1 512'");
  EXPECT_NE(bad_id.code, 0);
  EXPECT_NE(bad_id.err.find("512 is outside the vocabulary"), std::string::npos) << bad_id.err;

  auto not_id = run("model detokenize " + kModelDir + "/tok512.bin --ids '1 x2'");
  EXPECT_NE(not_id.code, 0);
  EXPECT_NE(not_id.err.find("'x2' is not a token id"), std::string::npos) << not_id.err;

  auto missing = run("model tokenize /nonexistent/vocab.gguf --text hi");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("/nonexistent/vocab.gguf"), std::string::npos) << missing.err;

  auto no_file = run("model tokenize --text hi");
  EXPECT_NE(no_file.code, 0);

  for (const char* cmd : {"tokenize", "detokenize"}) {
    auto help = run(std::string("model ") + cmd + " --help");
    EXPECT_EQ(help.code, 0);
    EXPECT_NE(help.out.find("llama2.c tokenizer.bin"), std::string::npos) << help.out;
  }
}

TEST(TokenizerCli, ImportTokenizerHelpAndErrors) {
  auto help = run("model import-tokenizer --help");
  EXPECT_EQ(help.code, 0);
  for (const char* s : {"tokenizer.json", "tokenizer_config.json", "--out", "--pre", "llama-bpe", "qwen2", "deepseek-v3"})
    EXPECT_NE(help.out.find(s), std::string::npos) << s << "\n" << help.out;

  const std::string out = std::string(TANDEM_TEST_WORK) + "/" + per_test_name("import") + ".gguf";
  auto missing = run("model import-tokenizer /nonexistent/tokenizer.json --out " + out);
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("/nonexistent/tokenizer.json"), std::string::npos) << missing.err;

  // A GGUF is not a tokenizer.json: the error names the file.
  const std::string gguf = kRestoredVocabs + "/ggml-vocab-gpt-2.gguf";
  auto not_json = run("model import-tokenizer " + gguf + " --out " + out);
  EXPECT_NE(not_json.code, 0);
  EXPECT_NE(not_json.err.find(gguf + ": not valid JSON"), std::string::npos) << not_json.err;
  auto bad_pre = run("model import-tokenizer " + gguf + " --out " + out + " --pre no-such");
  EXPECT_NE(bad_pre.code, 0);
}

TEST(TokenizerCli, InfoDescribesVocabularyFiles) {
  auto r = run("model info " + kRestoredVocabs + "/ggml-vocab-gpt-2.gguf");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("vocabulary, no weights"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokenizer bpe: 50257 tokens, 50000 merges, bos 50256 '<|endoftext|>'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pre-tokenizer 'gpt-2'"), std::string::npos) << r.out;
  auto j = run("model info " + kRestoredVocabs + "/ggml-vocab-llama-spm.gguf --json");
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_NE(j.out.find("\"n_tokens\": 32000"), std::string::npos) << j.out;
  EXPECT_NE(j.out.find("\"kind\": \"spm\""), std::string::npos) << j.out;
}

TEST(TokenizerCli, PiecesPreOverrideAndTheTable) {
  const std::string gpt2_file = kRestoredVocabs + "/ggml-vocab-gpt-2.gguf";
  auto own = run("model tokenize " + gpt2_file + " --pieces --text 'Hello 12345'");
  ASSERT_EQ(own.code, 0) << own.err;
  EXPECT_EQ(own.out, "[\"Hello\",\" 12345\"]\n");
  auto ds = run("model tokenize " + gpt2_file + " --pre deepseek-coder --pieces --text 'Hello 12345'");
  ASSERT_EQ(ds.code, 0) << ds.err;
  EXPECT_EQ(ds.out, "[\"Hello\",\" \",\"1\",\"2\",\"3\",\"4\",\"5\"]\n");
  // --pre changes the ids too: one digit per token.
  auto ids = run("model tokenize " + gpt2_file + " --pre qwen2 --no-bos --text '12345'");
  ASSERT_EQ(ids.code, 0) << ids.err;
  std::vector<int32_t> digits;
  for (char c : std::string("12345")) digits.push_back(gpt2().encode(std::string(1, c), false).at(0));
  EXPECT_EQ(ids.out, ids_line(digits));
  EXPECT_NE(ids_line(gpt2().encode("12345", false)), ids_line(digits));
  auto bad = run("model tokenize " + gpt2_file + " --pre no-such --text x");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("'no-such' is not supported"), std::string::npos) << bad.err;
  auto spm = run("model tokenize " + kModelDir + "/tok512.bin --pre qwen2 --text x");
  EXPECT_NE(spm.code, 0);
  EXPECT_NE(spm.err.find("SentencePiece"), std::string::npos) << spm.err;

  auto table = run("model pre-tokenizers --json");
  ASSERT_EQ(table.code, 0) << table.err;
  auto j = nlohmann::json::parse(table.out, nullptr, false);
  ASSERT_TRUE(j.is_array() && j.size() >= 18) << table.out;
  EXPECT_EQ(j[1]["names"][0], "llama-bpe");
  EXPECT_TRUE(j[1]["ignore_merges"].get<bool>());
  auto text = run("model pre-tokenizers");
  ASSERT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("deepseek-v3, hunyuan-dense\n"), std::string::npos) << text.out;
}
