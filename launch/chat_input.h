// The chat flags shared by `model chat`, `generate` and `client generate`: --messages FILE (an
// OpenAI-style array, or an object with "messages" and "tools"), --tools FILE, --var NAME=JSON
// (extra template variables) and, where the template is local, --chat-template FILE.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "rpc/tandem.pb.h"
#include "shard/result.h"
#include "shard/tokenizer/chat_template.h"

namespace tandem::cli {

struct ChatFlags {
  std::string messages, tools, chat_template;
  std::vector<std::string> vars;  // NAME=JSON
};

// required: --messages must be given (model chat); with_template: add --chat-template.
CLI::Option* add_chat_flags(CLI::App& cmd, ChatFlags& f, bool required, bool with_template = true);

struct ChatFiles {
  nlohmann::ordered_json messages, tools;                                    // tools: null when none
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();      // from --var
};
// Reads and checks the files and --var values; errors name the flag and the file.
Result<ChatFiles> read_chat_files(const ChatFlags& f);
// The same, folded into `opt` (tools and variables); returns the messages.
Result<ChatInput> read_chat_input(const ChatFlags& f, ChatOptions& opt);

// The files as a tandem.v1 ChatPrompt (what `client generate|chat` send; the server renders).
v1::ChatPrompt to_chat_prompt(const ChatFiles& files, bool add_generation_prompt);

}  // namespace tandem::cli
