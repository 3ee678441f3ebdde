// `tandem model chat`: renders a conversation with a model's chat template and prints the prompt
// exactly (no newline added), or its token ids — for checking a template before serving it.
// The template and special tokens come from a GGUF model or vocabulary file, or from a
// transformers tokenizer_config.json (its chat_template and *_token entries).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "launch/chat_input.h"
#include "launch/commands.h"
#include "shard/format/gguf_reader.h"
#include "shard/format/vocab.h"
#include "shard/log.h"
#include "shard/tokenizer/chat_template.h"

namespace tandem::cli {
namespace {

struct ChatArgs {
  std::string model;
  ChatFlags chat;
  bool no_generation_prompt = false, ids = false;
};

bool is_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

// The special tokens a tokenizer_config.json declares, as transformers' special_tokens_map: a
// string or an AddedToken object {"content": ...}; unset (null) ones are left out.
void config_tokens(const nlohmann::ordered_json& cfg, ChatOptions& o) {
  auto text = [](const nlohmann::ordered_json& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
  };
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (!cfg.contains(key)) continue;
    const auto t = text(cfg[key]);
    if (!t) continue;
    if (std::string(key) == "bos_token")
      o.bos_token = t;
    else if (std::string(key) == "eos_token")
      o.eos_token = t;
    else
      o.variables[key] = *t;
  }
  if (cfg.contains("additional_special_tokens") && cfg["additional_special_tokens"].is_array()) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& t : cfg["additional_special_tokens"])
      if (auto s = text(t)) list.push_back(*s);
    o.variables["additional_special_tokens"] = list;
  }
}

void run_chat(const ChatArgs& a) {
  std::string tmpl;
  ChatOptions opt;
  std::optional<Tokenizer> tok;
  if (is_gguf(a.model)) {
    auto f = open_gguf(a.model);
    if (!f) {
      spdlog::error("model chat: {}", f.error().message);
      fail(1);
    }
    auto vocab = vocab_from_gguf(*f);
    if (!vocab) {
      spdlog::error("model chat: {}: {}", a.model, vocab.error().message);
      fail(1);
    }
    auto t = resolve_chat_template(&*f, a.model, a.chat.chat_template);
    if (!t) {
      spdlog::error("model chat: {}", t.error().message);
      fail(2);
    }
    tmpl = std::move(*t);
    opt = chat_options_for(*vocab);
    if (a.ids) {
      auto tk = Tokenizer::create(std::move(*vocab));
      if (!tk) {
        spdlog::error("model chat: {}: {}", a.model, tk.error().message);
        fail(1);
      }
      tok = std::move(*tk);
    }
  } else {
    std::ifstream in(a.model, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::ordered_json cfg;
    try {
      cfg = nlohmann::ordered_json::parse(ss.str());
    } catch (const std::exception&) {
      spdlog::error("model chat: {} is neither a GGUF file nor a tokenizer_config.json (JSON)", a.model);
      fail(2);
    }
    if (a.ids) {
      spdlog::error("model chat: --ids needs a GGUF model or vocabulary (a tokenizer_config.json has no vocabulary)");
      fail(2);
    }
    if (!a.chat.chat_template.empty()) {
      auto t = resolve_chat_template(nullptr, a.model, a.chat.chat_template);
      if (!t) {
        spdlog::error("model chat: {}", t.error().message);
        fail(2);
      }
      tmpl = std::move(*t);
    } else if (cfg.is_object() && cfg.contains("chat_template") && cfg["chat_template"].is_string()) {
      tmpl = cfg["chat_template"].get<std::string>();
    } else {
      spdlog::error("model chat: {} has no chat_template; pass one with --chat-template FILE", a.model);
      fail(2);
    }
    if (cfg.is_object()) config_tokens(cfg, opt);
  }
  auto input = read_chat_input(a.chat, opt);
  if (!input) {
    spdlog::error("model chat: {}", input.error().message);
    fail(2);
  }
  opt.add_generation_prompt = !a.no_generation_prompt;
  auto prompt = render_chat(tmpl, input->messages, opt);
  if (!prompt) {
    spdlog::error("model chat: {}", prompt.error().message);
    fail(1);
  }
  if (tok) {
    std::string line;
    for (int32_t id : encode_chat_prompt(*tok, *prompt)) line += (line.empty() ? "" : " ") + std::to_string(id);
    std::printf("%s\n", line.c_str());
    return;
  }
  std::fwrite(prompt->data(), 1, prompt->size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_model_chat(CLI::App& model) {
  auto a = std::make_shared<ChatArgs>();
  auto* c = model.add_subcommand(
      "chat", "Render a conversation with the model's chat template and print the prompt exactly (no newline added)");
  c->add_option("model", a->model,
                "GGUF model or vocabulary (template from tokenizer.chat_template), or a transformers "
                "tokenizer_config.json")
      ->required()
      ->check(CLI::ExistingFile);
  add_chat_flags(*c, a->chat, /*required=*/true);
  c->add_flag("--no-generation-prompt", a->no_generation_prompt,
              "Do not append the opening of the assistant's turn (add_generation_prompt=false)");
  c->add_flag("--ids", a->ids, "Print the prompt's token ids (as the server tokenizes it) instead of its text");
  c->callback([a] { run_chat(*a); });
}

}  // namespace tandem::cli
