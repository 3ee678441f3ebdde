#include "shard/tokenizer/chat_template.h"

#include <ctime>
#include <fstream>
#include <sstream>

#include "shard/tokenizer/jinja_template.h"

namespace tandem {
namespace {

using jinja::Value;

// transformers' globals: raise_exception(message) and strftime_now(format).
void add_hf_globals(jinja::ObjectData& vars) {
  vars.set("raise_exception", Value::callable("raise_exception", [](jinja::Args& a) -> Value {
             throw jinja::RaisedError(a.positional.empty() ? std::string() : jinja::to_str(a.positional[0]));
           }));
  vars.set("strftime_now", Value::callable("strftime_now", [](jinja::Args& a) -> Value {
             if (a.positional.size() != 1 || !a.positional[0].is_string())
               throw jinja::TemplateError("strftime_now() takes one format string");
             const std::time_t now = std::time(nullptr);
             std::tm tm{};
             localtime_r(&now, &tm);
             char buf[512];
             const size_t n = std::strftime(buf, sizeof buf, a.positional[0].as_string().c_str(), &tm);
             return Value::string(std::string(buf, n));
           }));
}

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  auto t = jinja::Template::parse(source);
  if (!t) return Error{"chat template: " + t.error().message, ErrorCode::InvalidArgument};
  ChatTemplate c;
  c.tmpl_ = std::make_shared<const jinja::Template>(std::move(*t));
  c.source_ = std::make_shared<const std::string>(source);
  return c;
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatOptions& opt) const {
  if (!messages.is_array()) return make_error(ErrorCode::InvalidArgument, "messages must be a JSON array of objects");
  for (size_t i = 0; i < messages.size(); ++i)
    if (!messages[i].is_object())
      return make_error(ErrorCode::InvalidArgument, "messages[{}] is not an object (got {})", i, messages[i].dump());
  if (!opt.tools.is_null() && !opt.tools.is_array())
    return make_error(ErrorCode::InvalidArgument, "tools must be a JSON array (got {})", opt.tools.type_name());
  if (!opt.variables.is_object())
    return make_error(ErrorCode::InvalidArgument, "template variables must be a JSON object");
  jinja::ObjectData vars;
  try {
    add_hf_globals(vars);
    vars.set("messages", jinja::from_json(messages));
    vars.set("tools", jinja::from_json(opt.tools));
    vars.set("documents", Value::none());
    vars.set("add_generation_prompt", Value::boolean(opt.add_generation_prompt));
    if (opt.bos_token) vars.set("bos_token", Value::string(*opt.bos_token));
    if (opt.eos_token) vars.set("eos_token", Value::string(*opt.eos_token));
    for (const auto& [k, v] : opt.variables.items()) vars.set(k, jinja::from_json(v));
  } catch (const jinja::TemplateError& e) {
    return make_error(ErrorCode::InvalidArgument, "chat template input: {}", e.what());
  }
  auto out = tmpl_->render(vars);
  if (!out) return Error{"chat template: " + out.error().message, ErrorCode::InvalidArgument};
  return out;
}

Result<std::string> render_chat(std::string_view tmpl, const nlohmann::ordered_json& messages, const ChatOptions& opt) {
  auto t = ChatTemplate::parse(tmpl);
  if (!t) return t.error();
  return t->render(messages, opt);
}

Result<ChatInput> parse_chat_input(std::string_view json_text) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(json_text);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::InvalidArgument, "messages are not valid JSON: {}", e.what());
  }
  ChatInput in;
  if (j.is_array()) {
    in.messages = std::move(j);
  } else if (j.is_object() && j.contains("messages")) {
    in.messages = j["messages"];
    if (j.contains("tools")) in.tools = j["tools"];
  } else {
    return make_error(ErrorCode::InvalidArgument,
                      "messages must be a JSON array of messages or an object with \"messages\" (got {})", j.type_name());
  }
  if (!in.messages.is_array() || in.messages.empty())
    return make_error(ErrorCode::InvalidArgument, "messages must be a non-empty JSON array");
  for (size_t i = 0; i < in.messages.size(); ++i) {
    const auto& m = in.messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return make_error(ErrorCode::InvalidArgument, "messages[{}] must be an object with a string \"role\"", i);
  }
  if (!in.tools.is_null() && !in.tools.is_array())
    return make_error(ErrorCode::InvalidArgument, "\"tools\" must be a JSON array");
  return in;
}

Result<std::string> resolve_chat_template(const GgufFile* gguf, const std::string& model_path,
                                          const std::string& override_path) {
  if (!override_path.empty()) {
    std::ifstream f(override_path, std::ios::binary);
    if (!f) return make_error(ErrorCode::InvalidArgument, "--chat-template {}: cannot read the file", override_path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  if (gguf) {
    if (auto t = gguf->get_string(kChatTemplateKey)) return *t;
  }
  return make_error(ErrorCode::InvalidArgument,
                    "{} has no chat template (no {} in its metadata); pass one with --chat-template FILE", model_path,
                    kChatTemplateKey);
}

Result<ChatSetup> chat_setup(const ModelFile& model, const std::string& override_path) {
  ChatSetup s;
  s.defaults = chat_options_for(model.vocab);
  auto src = resolve_chat_template(model, override_path);
  if (!src) {
    if (!override_path.empty()) return src.error();
    s.unavailable = src.error().message;
    return s;
  }
  auto t = ChatTemplate::parse(*src);
  if (!t) {
    if (!override_path.empty()) return Error{"--chat-template " + override_path + ": " + t.error().message,
                                             ErrorCode::InvalidArgument};
    s.unavailable = "the chat template of " + model.path + " cannot be used: " + t.error().message +
                    "; pass one with --chat-template FILE";
    return s;
  }
  s.tmpl = std::make_shared<const ChatTemplate>(std::move(*t));
  return s;
}

ChatOptions chat_options_for(const Vocab& v) {
  ChatOptions o;
  const auto n = static_cast<int32_t>(v.tokens.size());
  if (v.bos >= 0 && v.bos < n) o.bos_token = v.tokens[static_cast<size_t>(v.bos)];
  if (v.eos >= 0 && v.eos < n) o.eos_token = v.tokens[static_cast<size_t>(v.eos)];
  return o;
}

std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, std::string_view prompt) {
  return tok.encode(prompt, /*add_special=*/false, /*parse_special=*/true);
}

}  // namespace tandem
