// The chat-template contract and tandem's Jinja subset: the variables a template sees, errors with
// their place, the limits that keep hostile templates from hanging or crashing the process,
// thread safety, and the model-file side (tokenizer.chat_template, special tokens, encoding).
// Rendering itself is checked against the reference renderers by chat_template.reference.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "shard/format/gguf_writer.h"
#include "shard/tokenizer/chat_template.h"
#include "shard/tokenizer/jinja_template.h"
#include "tests/unit/test_paths.h"
#include "tests/unit/tokenizer/test_tokenizer_data.h"

using namespace tandem;
using namespace tandem::testing;
using json = nlohmann::ordered_json;

namespace {

std::string render_ok(const std::string& tmpl, const json& messages = json::array({{{"role", "user"}, {"content", "hi"}}}),
                      const ChatOptions& opt = {}) {
  auto r = render_chat(tmpl, messages, opt);
  EXPECT_TRUE(r.ok()) << tmpl << ": " << r.error().message;
  return r.ok() ? *r : "";
}

std::string render_error(const std::string& tmpl, const json& messages = json::array({{{"role", "user"}, {"content", "hi"}}}),
                         const ChatOptions& opt = {}) {
  auto r = render_chat(tmpl, messages, opt);
  EXPECT_FALSE(r.ok()) << tmpl << " rendered " << (r.ok() ? *r : "");
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
  return r.error().message;
}

}  // namespace

TEST(ChatTemplate, SeesTheVariablesTransformersPasses) {
  ChatOptions o;
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  EXPECT_EQ(render_ok("{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools is none }}|"
                      "{{ documents is none }}|{{ messages[0].content }}",
                      json::array({{{"role", "user"}, {"content", "hi"}}}), o),
            "<s>|</s>|True|True|True|hi");
  o.add_generation_prompt = false;
  o.tools = json::array({{{"type", "function"}}});
  o.variables = {{"enable_thinking", false}, {"bos_token", "[BOS]"}};
  EXPECT_EQ(render_ok("{{ bos_token }}|{{ add_generation_prompt }}|{{ tools | length }}|{{ enable_thinking }}",
                      json::array({{{"role", "user"}, {"content", "hi"}}}), o),
            "[BOS]|False|1|False");
  // An absent special token is undefined, as in transformers' special_tokens_map.
  EXPECT_EQ(render_ok("{{ bos_token is defined }}{{ bos_token }}"), "False");
  EXPECT_NE(render_error("{{ bos_token + 'x' }}").find("'bos_token' is undefined"), std::string::npos);
}

TEST(ChatTemplate, ToolsKeepTheirKeyOrderInTojson) {
  ChatOptions o;
  o.tools = json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}])");
  EXPECT_EQ(render_ok("{{ tools[0] | tojson }}", json::array({{{"role", "user"}, {"content", ""}}}), o),
            R"({"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}})");
}

TEST(ChatTemplate, ParseErrorsNameTheProblemAndItsPlace) {
  auto bad = [](const std::string& t) {
    auto r = ChatTemplate::parse(t);
    EXPECT_FALSE(r.ok()) << t;
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_NE(bad("ok\n{% foo %}").find("unknown tag 'foo' (line 2, column 4)"), std::string::npos) << bad("ok\n{% foo %}");
  EXPECT_NE(bad("{% include 'x' %}").find("{% include %} tag is not supported"), std::string::npos);
  EXPECT_NE(bad("{% for x in y %}").find("needs 'else' or 'endfor'"), std::string::npos) << bad("{% for x in y %}");
  EXPECT_NE(bad("{{ x | nope }}").find("no filter named 'nope'"), std::string::npos);
  EXPECT_NE(bad("{{ 'abc }}").find("unterminated string"), std::string::npos);
  EXPECT_NE(bad("a\n  b {{ (1 + }}").find("(line 2, column 13)"), std::string::npos) << bad("a\n  b {{ (1 + }}");
  EXPECT_NE(bad("{{ x ").find("not closed"), std::string::npos) << bad("{{ x ");
  EXPECT_NE(bad("{{ x }").find("unexpected '}'"), std::string::npos) << bad("{{ x }");
}

TEST(ChatTemplate, UnsupportedFeaturesFailOnlyWhenUsed) {
  // A Jinja builtin outside the subset parses (as in Jinja) and is refused only when it runs.
  const std::string t = "{% if messages | length > 5 %}{{ messages | wordcount }}{% endif %}ok";
  EXPECT_EQ(render_ok(t), "ok");
  json many = json::array();
  for (int i = 0; i < 6; ++i) many.push_back({{"role", "user"}, {"content", "x"}});
  const std::string err = render_error(t, many);
  EXPECT_NE(err.find("filter 'wordcount'"), std::string::npos) << err;
  EXPECT_NE(err.find("not supported"), std::string::npos) << err;
  EXPECT_NE(err.find("line 1, column 45"), std::string::npos) << err;
}

TEST(ChatTemplate, RaiseExceptionCarriesTheTemplatesMessage) {
  const std::string err = render_error("{% if messages[0].role != 'system' %}{{ raise_exception('need a system prompt') }}{% endif %}");
  EXPECT_NE(err.find("the template raised an error: need a system prompt"), std::string::npos) << err;
}

TEST(ChatTemplate, BadInputIsAnError) {
  EXPECT_NE(render_error("x", json::object()).find("messages must be a JSON array"), std::string::npos);
  EXPECT_NE(render_error("x", json::array({1})).find("messages[0] is not an object"), std::string::npos);
  ChatOptions o;
  o.tools = json::object();
  EXPECT_NE(render_error("x", json::array(), o).find("tools must be a JSON array"), std::string::npos);
  o.tools = nullptr;
  o.variables = json::array();
  EXPECT_NE(render_error("x", json::array(), o).find("variables must be a JSON object"), std::string::npos);
}

TEST(ChatTemplate, HostileTemplatesStopWithAnError) {
  // Work: 10^10 loop iterations are cut off at the step budget (10^6) instead of running for hours.
  EXPECT_NE(render_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
                .find("loop iterations"),
            std::string::npos);
  // Output: 100 MB of text hits the output limit.
  EXPECT_NE(render_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}").find("rendered text exceeds"),
            std::string::npos);
  // Recursion: a macro that calls itself forever, and nesting deep enough to exhaust a stack.
  EXPECT_NE(render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("nested deeper"),
            std::string::npos);
  const std::string deep = "{{ " + std::string(20000, '(') + "1" + std::string(20000, ')') + " }}";
  EXPECT_NE(render_error(deep).find("nests expressions or tags deeper"), std::string::npos);
  std::string nots = "{{ ";
  for (int i = 0; i < 20000; ++i) nots += "not ";
  EXPECT_NE(render_error(nots + "1 }}").find("deeper"), std::string::npos);
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
  EXPECT_NE(render_error(ifs).find("deeper"), std::string::npos);
}

TEST(ChatTemplate, LimitsAreConfigurable) {
  auto t = jinja::Template::parse("{% for i in range(10) %}{{ i }}{% endfor %}");
  ASSERT_TRUE(t.ok());
  jinja::RenderLimits lim;
  lim.max_steps = 5;
  EXPECT_FALSE(t->render({}, lim).ok());
  lim.max_steps = 10;
  auto r = t->render({}, lim);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "0123456789");
}

TEST(ChatTemplate, RendersFromManyThreadsAtOnce) {
  auto t = ChatTemplate::parse(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}<{{ m.role }}:{{ m.content | trim }}>"
      "{% endfor %}{{ ns.n }}");
  ASSERT_TRUE(t.ok()) << t.error().message;
  json msgs = json::array();
  for (int i = 0; i < 50; ++i) msgs.push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", " m" + std::to_string(i)}});
  auto expect = t->render(msgs, {});
  ASSERT_TRUE(expect.ok());
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto r = t->render(msgs, {});
        if (!r.ok() || *r != *expect) ++mismatches;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_NE(expect->find("50"), std::string::npos);
}

TEST(ChatTemplate, ParsesMessagesFilesAndRequestBodies) {
  auto a = parse_chat_input(R"([{"role": "user", "content": "hi"}])");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->messages.size(), 1u);
  EXPECT_TRUE(a->tools.is_null());
  auto b = parse_chat_input(R"({"model": "x", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]})");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->tools.size(), 1u);
  EXPECT_NE(parse_chat_input("[{").error().message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_chat_input("[]").error().message.find("non-empty"), std::string::npos);
  EXPECT_NE(parse_chat_input(R"([{"content": "x"}])").error().message.find("messages[0]"), std::string::npos);
  EXPECT_NE(parse_chat_input(R"({"messages": [{"role": "user"}], "tools": {}})").error().message.find("tools"),
            std::string::npos);
  EXPECT_FALSE(parse_chat_input("42").ok());
}

namespace {

// stories260K.gguf with a chat template added to its metadata (tensors copied as they are).
std::string model_with_template(const std::string& name, const std::string& tmpl) {
  const std::string src = kModelDir + "/stories260K.gguf";
  auto f = open_gguf(src);
  if (!f) throw std::runtime_error(f.error().message);
  std::vector<TensorToWrite> ts;
  for (const auto& t : f->tensors) {
    const uint8_t* data = f->tensor_data(t);
    const size_t n = t.nbytes;
    ts.push_back({t.name, t.type, t.ne, [data, n](uint8_t* dst) { std::memcpy(dst, data, n); }});
  }
  auto md = f->metadata;
  md.emplace_back(kChatTemplateKey, gguf_str(tmpl));
  const std::string out = std::string(TANDEM_TEST_WORK) + "/" + name;
  auto st = write_gguf(out, md, ts);
  if (!st) throw std::runtime_error(st.error().message);
  return out;
}

}  // namespace

TEST(ChatTemplate, ComesFromTheModelFileOrTheOverride) {
  const std::string tmpl = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}";
  const std::string path = model_with_template("chat_template_model.gguf", tmpl);
  auto m = open_model(path);
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto t = resolve_chat_template(*m, "");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(*t, tmpl);

  const std::string override_path = std::string(TANDEM_TEST_WORK) + "/chat_template_override.jinja";
  std::ofstream(override_path) << "override";
  auto o = resolve_chat_template(*m, override_path);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(*o, "override");
  EXPECT_NE(resolve_chat_template(*m, "/nonexistent/t.jinja").error().message.find("cannot read"), std::string::npos);

  auto plain = open_model(kModelDir + "/stories260K.gguf");
  ASSERT_TRUE(plain.ok());
  const auto none = resolve_chat_template(*plain, "");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no chat template"), std::string::npos);
  EXPECT_NE(none.error().message.find("--chat-template"), std::string::npos);
}

TEST(ChatTemplate, SpecialTokensAndEncodingFollowTheVocabulary) {
  const Tokenizer& tok = tok512_gguf();
  const ChatOptions o = chat_options_for(tok.vocab());
  ASSERT_TRUE(o.bos_token && o.eos_token);
  EXPECT_EQ(*o.bos_token, tok.vocab().tokens[tok.bos()]);
  EXPECT_EQ(*o.eos_token, tok.vocab().tokens[tok.eos()]);
  // The template writes BOS as text; encoding recognises it and adds none of its own.
  const auto ids = encode_chat_prompt(tok, *o.bos_token + "Once upon a time");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], tok.bos());
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.bos()), 1);
  EXPECT_EQ(tok.decode(ids), "Once upon a time");
}

namespace {

struct Run {
  int code;
  std::string out, err;
};

Run run(const std::string& args) {
  static int n = 0;
  const std::string base =
      std::string(TANDEM_TEST_WORK) + "/" + tandem::testing::per_test_name("chat_cli") + "_" + std::to_string(n++);
  const std::string cmd = std::string(TANDEM_BIN) + " " + args + " >" + base + ".out 2>" + base + ".err </dev/null";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(base + ".out"), slurp(base + ".err")};
}

std::string write_work(const std::string& name, const std::string& text) {
  const std::string p = std::string(TANDEM_TEST_WORK) + "/" + name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

const char* kMessages = R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell a story."}])";

}  // namespace

TEST(ChatCli, ModelChatPrintsThePromptExactly) {
  const std::string tmpl =
      "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
      "{% if add_generation_prompt %}assistant:{% endif %}";
  const std::string model = model_with_template("chat_cli_model.gguf", tmpl);
  const std::string msgs = write_work("chat_cli_messages.json", kMessages);
  ChatOptions o = chat_options_for(tok512_gguf().vocab());
  auto expect = render_chat(tmpl, json::parse(kMessages), o);
  ASSERT_TRUE(expect.ok());

  auto r = run("model chat " + model + " --messages " + msgs);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, *expect);  // byte for byte, no newline added
  EXPECT_EQ(r.out.substr(r.out.size() - 10), "assistant:");

  auto ng = run("model chat " + model + " --messages " + msgs + " --no-generation-prompt");
  ASSERT_EQ(ng.code, 0) << ng.err;
  o.add_generation_prompt = false;
  EXPECT_EQ(ng.out, *render_chat(tmpl, json::parse(kMessages), o));

  auto ids = run("model chat " + model + " --messages " + msgs + " --ids");
  ASSERT_EQ(ids.code, 0) << ids.err;
  std::string line;
  for (int32_t id : encode_chat_prompt(tok512_gguf(), *expect)) line += (line.empty() ? "" : " ") + std::to_string(id);
  EXPECT_EQ(ids.out, line + "\n");

  // --chat-template replaces the model's; --var adds variables.
  const std::string other = write_work("chat_cli_other.jinja", "{{ messages | length }} {{ greeting }}");
  auto ov = run("model chat " + model + " --messages " + msgs + " --chat-template " + other + " --var greeting=\"hello\"");
  ASSERT_EQ(ov.code, 0) << ov.err;
  EXPECT_EQ(ov.out, "2 hello");
}

TEST(ChatCli, ModelChatErrors) {
  const std::string msgs = write_work("chat_cli_messages2.json", kMessages);
  auto none = run("model chat " + kModelDir + "/stories260K.gguf --messages " + msgs);
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("no chat template"), std::string::npos) << none.err;
  EXPECT_NE(none.err.find("--chat-template"), std::string::npos) << none.err;

  const std::string bad_tmpl = write_work("chat_cli_bad.jinja", "{% for m in messages %}{{ m.role | shout }}{% endfor %}");
  auto bad = run("model chat " + kModelDir + "/stories260K.gguf --messages " + msgs + " --chat-template " + bad_tmpl);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("no filter named 'shout' (line 1, column 36)"), std::string::npos) << bad.err;
  EXPECT_TRUE(bad.out.empty());

  const std::string bad_msgs = write_work("chat_cli_bad_messages.json", R"({"role": "user"})");
  auto bm = run("model chat " + kModelDir + "/stories260K.gguf --messages " + bad_msgs + " --chat-template " + bad_tmpl);
  EXPECT_EQ(bm.code, 2);
  EXPECT_NE(bm.err.find("--messages"), std::string::npos) << bm.err;
}

TEST(ChatCli, GenerateWithMessagesEqualsGenerateWithTheRenderedPrompt) {
  // A template without special-token texts, so that the plain prompt path tokenizes the same.
  const std::string tmpl = "{% for m in messages %}{{ m.content }} {% endfor %}Once";
  const std::string model = model_with_template("chat_generate_model.gguf", tmpl);
  const std::string msgs = write_work("chat_generate_messages.json", R"([{"role": "user", "content": "There was a cat."}])");
  auto rendered = render_chat(tmpl, json::parse(R"([{"role": "user", "content": "There was a cat."}])"), {});
  ASSERT_TRUE(rendered.ok());
  const std::string prompt = write_work("chat_generate_prompt.txt", *rendered);
  auto a = run("generate -m " + model + " --messages " + msgs + " -n 12");
  auto b = run("generate -m " + model + " --prompt-file " + prompt + " --no-bos -n 12");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_GT(a.out.size(), 1u);

  auto none = run("generate -m " + kModelDir + "/stories260K.gguf --messages " + msgs + " -n 4");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("--chat-template"), std::string::npos) << none.err;
}
