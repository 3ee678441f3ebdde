// Chat templates: a model's `tokenizer.chat_template` (Jinja) applied to OpenAI-style messages,
// rendering byte for byte what transformers' apply_chat_template renders: the same variables
// (messages, tools, documents, add_generation_prompt, the special tokens, extra variables) and
// globals (raise_exception, strftime_now) under the same Jinja semantics (jinja_template.h).
// A template outside tandem's Jinja subset, or one that raises, is an error — never a prompt.
//
// JSON is nlohmann::ordered_json because key order is visible: `tools | tojson` prints the keys in
// the order the client sent them, as Python's dicts keep it.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shard/format/model_file.h"
#include "shard/result.h"
#include "shard/tokenizer/tokenizer.h"

namespace tandem {

namespace jinja {
class Template;
}

struct ChatOptions {
  // Append the opening of the assistant's turn (transformers' add_generation_prompt).
  bool add_generation_prompt = true;
  // The special tokens as transformers passes them (its special_tokens_map): an absent one is
  // undefined in the template, as for a tokenizer that has none.
  std::optional<std::string> bos_token, eos_token;
  // OpenAI "tools" (a JSON array) -> `tools`; null -> `tools` is none, as transformers passes it.
  nlohmann::ordered_json tools;
  // More template variables (an object), e.g. {"enable_thinking": false}; they override the above.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Parses once; errors name the line and column ("unknown tag 'include' (line 3, column 4)").
  static Result<ChatTemplate> parse(std::string_view source);
  // messages: a JSON array of objects (role, content, and whatever the template reads: tool_calls,
  // tool_call_id, name, reasoning_content). Safe to call from several threads at once.
  Result<std::string> render(const nlohmann::ordered_json& messages, const ChatOptions& opt) const;
  const std::string& source() const { return *source_; }

 private:
  std::shared_ptr<const jinja::Template> tmpl_;
  std::shared_ptr<const std::string> source_;
};

// Parse + render in one call.
Result<std::string> render_chat(std::string_view tmpl, const nlohmann::ordered_json& messages, const ChatOptions& opt);

// A messages file or request body: either a JSON array of messages, or an object with "messages"
// and optionally "tools" (as in an OpenAI chat request). Errors say what is wrong with it.
struct ChatInput {
  nlohmann::ordered_json messages, tools;
};
Result<ChatInput> parse_chat_input(std::string_view json_text);

// The GGUF key holding a model's template.
inline constexpr const char* kChatTemplateKey = "tokenizer.chat_template";
// `override_path` (a --chat-template FILE) when not empty, else the file's tokenizer.chat_template
// (`gguf` null for a llama2.c file); an error naming the file and the flag when there is neither.
Result<std::string> resolve_chat_template(const GgufFile* gguf, const std::string& model_path,
                                          const std::string& override_path);
inline Result<std::string> resolve_chat_template(const ModelFile& model, const std::string& override_path) {
  return resolve_chat_template(model.gguf ? &*model.gguf : nullptr, model.path, override_path);
}
// What a server renders chat requests with: the --chat-template override, else the model's own
// template. Without a usable one `tmpl` is null and `unavailable` says why (chat requests are then
// refused with that reason); an override that cannot be read or parsed is an error (start-up fails).
struct ChatSetup {
  std::shared_ptr<const ChatTemplate> tmpl;
  std::string unavailable;
  ChatOptions defaults;  // the special tokens of the served vocabulary
};
Result<ChatSetup> chat_setup(const ModelFile& model, const std::string& override_path);
// bos_token / eos_token: the texts of the vocabulary's BOS and EOS tokens (when it has them).
ChatOptions chat_options_for(const Vocab& vocab);
// A rendered prompt -> ids the way transformers tokenizes one: special-token texts are tokens, and
// no BOS is prepended (the template writes it when the model wants one).
std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, std::string_view prompt);

}  // namespace tandem
