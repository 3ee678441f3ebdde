// Chat prompts end to end: a server started with --chat-template renders a conversation exactly
// as `tandem model chat` does (RenderChat text and ids), Generate with a chat prompt streams the
// same tokens as Generate with those ids, `tandem client generate --messages` prints what
// `tandem generate --messages` prints, and a template that raises is INVALID_ARGUMENT.
#include <gtest/gtest.h>

#include <fstream>

#include "e2e_support.h"

using namespace tandem;
using namespace tandem::e2e;

namespace {

const char* kTemplate =
    "{{ bos_token }}{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools here') }}{% endif %}"
    "{{ m.content | trim }}{% if not loop.last %} {% endif %}{% endfor %}{% if add_generation_prompt %} Once{% endif %}";
const char* kMessages =
    R"([{"role": "system", "content": "  There was a little girl."}, {"role": "user", "content": "She had a dog.  "}])";

std::string write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace

TEST(E2eChat, ChatPromptsRenderAndGenerateAsTheCommandLineDoes) {
  const std::string dir = fresh_dir("chat-files");
  const std::string tmpl = write(dir + "/template.jinja", kTemplate);
  const std::string msgs = write(dir + "/messages.json", kMessages);
  const std::string model = testdata_model("stories260K.gguf");

  // What the command line renders, as text and ids.
  ASSERT_EQ(run({tandem_bin(), "model", "chat", model, "--chat-template", tmpl, "--messages", msgs}, dir + "/chat.txt", 60s), 0)
      << read_text(dir + "/chat.txt");
  const std::string rendered = read_text(dir + "/chat.txt");
  ASSERT_EQ(run({tandem_bin(), "model", "chat", model, "--chat-template", tmpl, "--messages", msgs, "--ids"}, dir + "/ids.txt",
                60s),
            0);
  const std::vector<int32_t> ids = read_ids(dir + "/ids.txt");
  ASSERT_FALSE(ids.empty());
  // And what `tandem generate --messages` prints (greedy).
  ASSERT_EQ(run({tandem_bin(), "generate", "-m", model, "--chat-template", tmpl, "--messages", msgs, "-n", "24", "--ids-out",
                 dir + "/gen.ids"},
                dir + "/gen.log", 120s),
            0)
      << read_text(dir + "/gen.log");
  const std::vector<int32_t> generated = read_ids(dir + "/gen.ids");
  ASSERT_EQ(generated.size(), 24u);

  ServerConfig c;
  c.model = model;
  c.max_seqs = 2;
  c.warmup = false;
  c.extra = {"--chat-template", tmpl};
  Server server(c, "chat");
  ASSERT_TRUE(server.up());

  v1::ChatPrompt p;
  p.set_messages_json(kMessages);
  v1::RenderChatResponse r;
  ASSERT_TRUE(server.client().render_chat(p, r).ok());
  EXPECT_EQ(r.text(), rendered);
  EXPECT_EQ(std::vector<int32_t>(r.ids().begin(), r.ids().end()), ids);

  v1::GenerateRequest chat_req;
  *chat_req.mutable_chat() = p;
  chat_req.set_max_tokens(24);
  rpc::GenerateResult g;
  ASSERT_TRUE(server.client().generate(chat_req, g, {}, 60s).ok());
  EXPECT_EQ(g.ids, generated);
  EXPECT_EQ(g.final.usage().prompt_tokens(), static_cast<int>(ids.size()));
  v1::GenerateRequest ids_req;
  ids_req.mutable_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  ids_req.set_max_tokens(24);
  rpc::GenerateResult g2;
  ASSERT_TRUE(server.client().generate(ids_req, g2, {}, 60s).ok());
  EXPECT_EQ(g2.ids, g.ids);

  // The bundled client prints what `tandem generate` printed.
  ASSERT_EQ(run({tandem_bin(), "generate", "-m", model, "--chat-template", tmpl, "--messages", msgs, "-n", "24"},
                dir + "/gen.txt", 120s),
            0);
  ASSERT_EQ(run({tandem_bin(), "client", "generate", "--addr", server.addr(), "--messages", msgs, "-n", "24", "-q"},
                dir + "/client.txt", 60s),
            0)
      << read_text(dir + "/client.txt");
  // (run() merges stdout and stderr; the generated text sits between log lines there.)
  std::string client_text = read_text(dir + "/client.txt");
  ASSERT_FALSE(client_text.empty());
  ASSERT_EQ(client_text.back(), '\n');
  client_text.pop_back();
  EXPECT_GT(client_text.size(), 20u);
  EXPECT_NE(read_text(dir + "/gen.txt").find(client_text), std::string::npos) << client_text;
  ASSERT_EQ(run({tandem_bin(), "client", "chat", "--addr", server.addr(), "--messages", msgs}, dir + "/client_chat.txt", 60s), 0);
  EXPECT_EQ(read_text(dir + "/client_chat.txt"), rendered);

  // A template that raises: INVALID_ARGUMENT carrying its message, nothing generated.
  v1::GenerateRequest bad;
  bad.mutable_chat()->set_messages_json(R"([{"role": "tool", "content": "42"}])");
  rpc::GenerateResult gb;
  const grpc::Status st = server.client().generate(bad, gb, {}, 30s);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("no tools here"), std::string::npos) << st.error_message();
  EXPECT_TRUE(gb.ids.empty());
}
