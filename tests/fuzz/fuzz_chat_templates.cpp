// Mutation fuzzing of the chat-template engine: thousands of corrupted real templates, rendered
// over messages whose fields have unexpected types, must each render or fail with an Error —
// never crash, hang or trip a sanitizer (CI runs this binary under ASan + UBSan).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "shard/tokenizer/chat_template.h"

using namespace tandem;
using json = nlohmann::ordered_json;

namespace {

std::vector<std::string> seed_templates() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(TANDEM_CHAT_TEMPLATES)) {
    if (e.path().extension() != ".jinja") continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    out.push_back(ss.str());
  }
  std::ifstream f(std::string(TANDEM_CHAT_TEMPLATES) + "/snippets.json");
  const json snippets = json::parse(f);
  for (const auto& s : snippets["snippets"]) out.push_back(s["t"].get<std::string>());
  return out;
}

// Conversations whose fields are sometimes of the wrong type, as a careless client sends them.
std::vector<json> conversations() {
  return {
      json::parse(R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "yo", "tool_calls": [{"id": "call12345", "type": "function",
                       "function": {"name": "f", "arguments": {"a": 1}}}]},
                      {"role": "tool", "tool_call_id": "call12345", "content": "42"}])"),
      json::parse(R"([{"role": "user", "content": null}, {"role": "assistant", "content": ["a", 1]},
                      {"role": "user", "content": {"text": "x"}}])"),
      json::parse(R"([{"role": 7, "content": 1.5}, {"content": "no role"}, {"role": "user", "tool_calls": "x"}])"),
      json::parse(R"([{"role": "user", "content": "<think>a</think>b", "reasoning_content": 3}])"),
  };
}

const char* const kFragments[] = {"{%", "%}", "{{", "}}", "{#", "#}", "-", "+", "(", ")", "[", "]", "{", "}", "|",
                                  ".", ",", ":", "'", "\"", "\\", "~", "*", "**", "//", " if ", " else ", " for ",
                                  " in ", " not ", " is ", " and ", "endfor", "endif", "set ", "macro ", "loop.",
                                  "[::-1]", "|tojson", "|length", "|trim", "namespace(", "raise_exception(", "\n"};

std::string mutate(const std::vector<std::string>& seeds, std::mt19937_64& rng) {
  std::string t = seeds[rng() % seeds.size()];
  const int edits = 1 + static_cast<int>(rng() % 6);
  for (int e = 0; e < edits; ++e) {
    const size_t at = t.empty() ? 0 : rng() % (t.size() + 1);
    switch (rng() % 6) {
      case 0:  // flip a byte
        if (!t.empty()) t[std::min(at, t.size() - 1)] = static_cast<char>(rng());
        break;
      case 1:  // delete a span
        if (!t.empty()) t.erase(std::min(at, t.size() - 1), 1 + rng() % 16);
        break;
      case 2:  // insert a syntax fragment
        t.insert(at, kFragments[rng() % (sizeof kFragments / sizeof *kFragments)]);
        break;
      case 3: {  // duplicate a span (nesting, repeated tags)
        if (t.empty()) break;
        const size_t b = rng() % t.size(), n = std::min<size_t>(1 + rng() % 200, t.size() - b);
        t.insert(at, t.substr(b, n));
        break;
      }
      case 4: {  // splice in a span of another template
        const std::string& o = seeds[rng() % seeds.size()];
        if (o.empty()) break;
        const size_t b = rng() % o.size(), n = std::min<size_t>(1 + rng() % 120, o.size() - b);
        t.insert(at, o.substr(b, n));
        break;
      }
      default:  // truncate
        t.resize(at);
    }
  }
  return t;
}

}  // namespace

TEST(FuzzChatTemplates, MutatedTemplatesRenderOrFailCleanly) {
  const auto seeds = seed_templates();
  ASSERT_GE(seeds.size(), 50u);
  const auto convs = conversations();
  ChatOptions opt;
  opt.bos_token = "<s>";
  opt.eos_token = "</s>";
  opt.tools = json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])");
  std::mt19937_64 rng(20260514);
  int parsed = 0, rendered = 0;
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kMutants = 30000;
  for (int i = 0; i < kMutants; ++i) {
    const std::string t = mutate(seeds, rng);
    auto tmpl = ChatTemplate::parse(t);
    if (!tmpl) {
      EXPECT_FALSE(tmpl.error().message.empty());
      continue;
    }
    ++parsed;
    for (const auto& c : convs) {
      opt.add_generation_prompt = (rng() & 1) != 0;
      auto r = tmpl->render(c, opt);
      if (r)
        ++rendered;
      else
        EXPECT_FALSE(r.error().message.empty());
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d mutants: %d parsed, %d renders succeeded, %.1f s\n", kMutants, parsed, rendered, s);
  EXPECT_GT(parsed, kMutants / 10);  // the mutations must leave enough parseable templates to test rendering
}
