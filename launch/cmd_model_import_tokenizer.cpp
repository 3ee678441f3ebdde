// `tandem model import-tokenizer`: a Hugging Face tokenizer.json (+ tokenizer_config.json) to a
// GGUF vocabulary (no weights) that every command reading a vocabulary accepts.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "launch/commands.h"
#include "shard/format/gguf_writer.h"
#include "shard/log.h"
#include "shard/tokenizer/hf_import.h"
#include "shard/tokenizer/pre_tokenizer.h"
#include "shard/tokenizer/tokenizer.h"

namespace tandem::cli {
namespace {

struct ImportArgs {
  std::string tokenizer, config, out, pre;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    spdlog::error("model import-tokenizer: cannot open {}", path);
    fail(1);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string token_desc(const Vocab& v, int32_t id) {
  return id >= 0 ? fmt::format("{} '{}'", id, v.tokens[static_cast<size_t>(id)]) : std::string("none");
}

void run_import(const ImportArgs& a) {
  std::error_code ec;
  for (const std::string* in : {&a.tokenizer, &a.config})
    if (!in->empty() && std::filesystem::equivalent(*in, a.out, ec)) {
      spdlog::error("model import-tokenizer: --out {} is an input file; choose another path", a.out);
      fail(2);
    }
  HfImportOptions opt;
  opt.pre = a.pre;
  opt.tokenizer_path = a.tokenizer;
  opt.config_path = a.config;
  auto t = import_hf_tokenizer(read_file(a.tokenizer), a.config.empty() ? std::string() : read_file(a.config), opt);
  if (!t) {
    spdlog::error("model import-tokenizer: {}", t.error().message);
    fail(1);
  }
  for (const auto& w : t->warnings) spdlog::warn("model import-tokenizer: {}", w);
  if (auto st = write_gguf(a.out, hf_tokenizer_metadata(*t), {}); !st) {
    spdlog::error("model import-tokenizer: {}", st.error().message);
    fail(1);
  }
  // What was written must load as every command loads it.
  auto back = load_vocab(a.out);
  auto tok = back ? Tokenizer::create(std::move(*back)) : Result<Tokenizer>(back.error());
  if (!tok) {
    spdlog::error("model import-tokenizer: wrote {} but it does not load: {}", a.out, tok.error().message);
    fail(1);
  }
  const Vocab& v = tok->vocab();
  std::cout << fmt::format(
      "wrote {}: {} tokens, {} merges\npre-tokenizer: {} ({})\nBOS: {}{}\nEOS: {}\nchat template: {}\n", a.out,
      v.tokens.size(), v.merges.size(), v.pre, t->pre_reason, token_desc(v, v.bos), v.add_bos ? " (added)" : "",
      token_desc(v, v.eos),
      t->chat_template.empty() ? std::string("none")
                               : fmt::format("{} bytes{}", t->chat_template.size(),
                                             t->named_templates.empty() ? ""
                                                                        : fmt::format(" (+{} named)", t->named_templates.size())));
}

}  // namespace

void add_model_import_tokenizer(CLI::App& parent) {
  auto a = std::make_shared<ImportArgs>();
  auto* c = parent.add_subcommand(
      "import-tokenizer",
      "Convert a Hugging Face byte-level BPE tokenizer.json (and its tokenizer_config.json: special tokens, "
      "add_bos_token, chat_template) to a GGUF vocabulary for `model tokenize`, `model chat` and the rest, with the "
      "keys llama.cpp's converter writes. The pre-tokenizer is recognised from the pre_tokenizer's Split regexes");
  c->add_option("tokenizer.json", a->tokenizer, "The tokenizer.json")->required()->check(CLI::ExistingFile);
  c->add_option("tokenizer_config.json", a->config, "Its tokenizer_config.json (optional)")->check(CLI::ExistingFile);
  c->add_option("--out", a->out, "GGUF vocabulary to write")->required();
  c->add_option("--pre", a->pre,
                "Write this tokenizer.ggml.pre instead of the recognised one; one of: " + supported_pre_tokenizers_text());
  c->callback([a] { run_import(*a); });
}

}  // namespace tandem::cli
