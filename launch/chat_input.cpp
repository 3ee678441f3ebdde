#include "launch/chat_input.h"

#include <fstream>
#include <sstream>

namespace tandem::cli {
namespace {

Result<std::string> read_file(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::InvalidArgument, "{} {}: cannot read the file", flag, path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

CLI::Option* add_chat_flags(CLI::App& c, ChatFlags& f, bool required, bool with_template) {
  auto* m = c.add_option("--messages", f.messages,
                         "Chat messages (JSON): an OpenAI-style array [{\"role\": ..., \"content\": ...}], or an "
                         "object with \"messages\" and \"tools\"; rendered with the chat template")
                ->check(CLI::ExistingFile);
  if (required) m->required();
  c.add_option("--tools", f.tools, "Tool definitions (JSON array, OpenAI \"tools\") passed to the template as `tools`")
      ->check(CLI::ExistingFile)
      ->needs(m);
  c.add_option("--var", f.vars,
               "Extra template variable NAME=VALUE (VALUE is JSON, else a string), e.g. enable_thinking=false; "
               "repeatable")
      ->needs(m);
  if (with_template)
    c.add_option("--chat-template", f.chat_template,
                 "Jinja chat template file to use instead of the model's tokenizer.chat_template")
        ->check(CLI::ExistingFile);
  return m;
}

Result<ChatFiles> read_chat_files(const ChatFlags& f) {
  ChatFiles out;
  auto text = read_file("--messages", f.messages);
  if (!text) return text.error();
  auto in = parse_chat_input(*text);
  if (!in) return Error{"--messages " + f.messages + ": " + in.error().message, ErrorCode::InvalidArgument};
  out.messages = std::move(in->messages);
  out.tools = std::move(in->tools);
  if (!f.tools.empty()) {
    auto t = read_file("--tools", f.tools);
    if (!t) return t.error();
    try {
      out.tools = nlohmann::ordered_json::parse(*t);
    } catch (const std::exception& e) {
      return make_error(ErrorCode::InvalidArgument, "--tools {}: not valid JSON: {}", f.tools, e.what());
    }
    if (!out.tools.is_array())
      return make_error(ErrorCode::InvalidArgument, "--tools {}: must be a JSON array of tools", f.tools);
  }
  for (const std::string& v : f.vars) {
    const size_t eq = v.find('=');
    if (eq == std::string::npos || eq == 0)
      return make_error(ErrorCode::InvalidArgument, "--var {}: expected NAME=VALUE", v);
    const std::string name = v.substr(0, eq), value = v.substr(eq + 1);
    try {
      out.variables[name] = nlohmann::ordered_json::parse(value);
    } catch (const std::exception&) {
      out.variables[name] = value;  // not JSON: the text itself
    }
  }
  return out;
}

Result<ChatInput> read_chat_input(const ChatFlags& f, ChatOptions& opt) {
  auto files = read_chat_files(f);
  if (!files) return files.error();
  opt.tools = files->tools;
  for (auto& [k, v] : files->variables.items()) opt.variables[k] = v;
  ChatInput in;
  in.messages = std::move(files->messages);
  in.tools = std::move(files->tools);
  return in;
}

v1::ChatPrompt to_chat_prompt(const ChatFiles& files, bool add_generation_prompt) {
  v1::ChatPrompt p;
  p.set_messages_json(files.messages.dump());
  if (!files.tools.is_null()) p.set_tools_json(files.tools.dump());
  if (!files.variables.empty()) p.set_variables_json(files.variables.dump());
  p.set_add_generation_prompt(add_generation_prompt);
  return p;
}

}  // namespace tandem::cli
