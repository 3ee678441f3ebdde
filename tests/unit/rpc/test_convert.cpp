// tandem.v1 <-> engine conversions: defaults of absent fields, every validation message, and the
// enum/usage/layout mappings the server reports.
#include <gtest/gtest.h>

#include <cmath>

#include "rpc/convert.h"
#include "shard/format/model_file.h"

using namespace tandem;
namespace v1 = tandem::v1;

namespace {

const Tokenizer& tok() {
  static Tokenizer t = [] {
    auto m = open_model(std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf");
    EXPECT_TRUE(m.ok()) << (m ? "" : m.error().message);
    return *Tokenizer::create(m->vocab);
  }();
  return t;
}

constexpr int kCtx = 64;

v1::GenerateRequest text(const std::string& s) {
  v1::GenerateRequest r;
  r.set_text(s);
  return r;
}

// The conversion's error, which must be InvalidArgument and mention `needle`.
void expect_invalid(const v1::GenerateRequest& r, const std::string& needle, int ctx = kCtx) {
  auto out = rpc::to_engine_request(r, tok(), ctx);
  ASSERT_FALSE(out.ok()) << "accepted a request that should fail with '" << needle << "'";
  EXPECT_EQ(out.error().code, ErrorCode::InvalidArgument);
  EXPECT_NE(out.error().message.find(needle), std::string::npos) << out.error().message;
}

}  // namespace

TEST(RpcConvert, AbsentFieldsTakeTheDocumentedDefaults) {
  auto r = rpc::to_engine_request(text("Once upon a time"), tok(), 2048);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->prompt, tok().encode("Once upon a time", true));
  EXPECT_EQ(r->prompt.front(), tok().bos());
  EXPECT_EQ(r->sampling.temperature, 0.0f);
  EXPECT_EQ(r->sampling.top_p, 1.0f);  // absent is 1, not proto3's 0
  EXPECT_EQ(r->sampling.top_k, 0);
  EXPECT_EQ(r->sampling.min_p, 0.0f);
  EXPECT_EQ(r->sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(r->sampling.penalty_last_n, 64);
  EXPECT_EQ(r->stop.max_tokens, rpc::kDefaultMaxTokens);
  EXPECT_EQ(r->speculation, SpecMode::Auto);
  EXPECT_EQ(r->draft_len, 0);
  EXPECT_FALSE(r->logprobs);
}

TEST(RpcConvert, DefaultMaxTokensShrinksToTheContextButAnExplicitOneDoesNot) {
  auto r = rpc::to_engine_request(text("Once upon a time"), tok(), 40);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stop.max_tokens, 40 - static_cast<int>(r->prompt.size()));
  v1::GenerateRequest q = text("Once upon a time");
  q.set_max_tokens(40);
  expect_invalid(q, "beyond the context size 40", 40);
}

TEST(RpcConvert, GivenFieldsArePassedThrough) {
  v1::GenerateRequest q;
  q.mutable_ids()->add_ids(5);
  q.mutable_ids()->add_ids(300);
  q.set_max_tokens(7);
  q.set_temperature(0.7f);
  q.set_top_k(40);
  q.set_top_p(0.9f);
  q.set_min_p(0.05f);
  q.set_repetition_penalty(1.1f);
  q.set_presence_penalty(0.2f);
  q.set_frequency_penalty(0.3f);
  q.set_penalty_last_n(-1);
  q.set_seed(1234567890123ULL);
  q.add_stop("END");
  q.add_stop_token_ids(2);
  q.set_ignore_eos(true);
  q.set_logprobs(true);
  q.set_speculation(v1::SPECULATION_PEARL);
  q.set_draft_len(4);
  q.set_request_id("abc");
  auto r = rpc::to_engine_request(q, tok(), kCtx);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->id, "abc");
  EXPECT_EQ(r->prompt, (std::vector<int32_t>{5, 300}));  // ids are used as given: no BOS
  EXPECT_EQ(r->stop.max_tokens, 7);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.7f);
  EXPECT_EQ(r->sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(r->sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r->sampling.repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(r->sampling.presence_penalty, 0.2f);
  EXPECT_FLOAT_EQ(r->sampling.frequency_penalty, 0.3f);
  EXPECT_EQ(r->sampling.penalty_last_n, -1);
  EXPECT_EQ(r->sampling.seed, 1234567890123ULL);
  EXPECT_EQ(r->stop.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r->stop.stop_token_ids, std::vector<int32_t>{2});
  EXPECT_TRUE(r->stop.ignore_eos);
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->speculation, SpecMode::Pearl);
  EXPECT_EQ(r->draft_len, 4);
}

TEST(RpcConvert, AddBosFalseDropsTheBos) {
  v1::GenerateRequest q = text("Once");
  q.set_add_bos(false);
  auto r = rpc::to_engine_request(q, tok(), kCtx);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prompt, tok().encode("Once", false));
  EXPECT_NE(r->prompt.front(), tok().bos());
}

TEST(RpcConvert, EveryInvalidRequestIsRejectedWithAClearMessage) {
  expect_invalid(v1::GenerateRequest{}, "set either text or ids");
  expect_invalid(text(""), "prompt is empty");
  {
    v1::GenerateRequest q;
    q.mutable_ids();
    expect_invalid(q, "ids has no tokens");
  }
  {
    v1::GenerateRequest q;
    q.mutable_ids()->add_ids(1);
    q.mutable_ids()->add_ids(512);
    expect_invalid(q, "ids[1] = 512 is not in the vocabulary [0, 512)");
  }
  {
    v1::GenerateRequest q;
    q.mutable_ids()->add_ids(-3);
    expect_invalid(q, "ids[0] = -3");
  }
  {
    v1::GenerateRequest q;
    for (int i = 0; i < kCtx; ++i) q.mutable_ids()->add_ids(300);
    expect_invalid(q, "leaving no room to generate");
  }
  auto with = [](auto set) {
    v1::GenerateRequest q = text("Once");
    set(q);
    return q;
  };
  expect_invalid(with([](auto& q) { q.set_top_p(2); }), "top_p must be in (0, 1]");
  expect_invalid(with([](auto& q) { q.set_top_p(0); }), "top_p");
  expect_invalid(with([](auto& q) { q.set_temperature(-1); }), "temperature");
  expect_invalid(with([](auto& q) { q.set_temperature(std::nanf("")); }), "temperature");
  expect_invalid(with([](auto& q) { q.set_top_k(-1); }), "top_k");
  expect_invalid(with([](auto& q) { q.set_min_p(1); }), "min_p");
  expect_invalid(with([](auto& q) { q.set_repetition_penalty(0); }), "repetition_penalty");
  expect_invalid(with([](auto& q) { q.set_penalty_last_n(-2); }), "penalty_last_n");
  expect_invalid(with([](auto& q) { q.set_max_tokens(0); }), "max_tokens must be at least 1");
  expect_invalid(with([](auto& q) { q.set_max_tokens(1000); }), "prompt (2 tokens) + max_tokens (1000)");
  expect_invalid(with([](auto& q) { q.add_stop(""); }), "stop string 0 is empty");
  expect_invalid(with([](auto& q) { q.add_stop_token_ids(512); }), "stop_token_ids[0] = 512");
  expect_invalid(with([](auto& q) { q.set_draft_len(-1); }), "draft_len");
}

TEST(RpcConvert, EnumsRoundTrip) {
  for (SpecMode m : {SpecMode::Auto, SpecMode::Off, SpecMode::Sd, SpecMode::Pearl})
    EXPECT_EQ(rpc::from_proto(rpc::to_proto(m)), m);
  EXPECT_EQ(rpc::from_proto(static_cast<v1::Speculation>(99)), SpecMode::Auto);  // a newer client's mode
  for (FinishReason r : {FinishReason::kLength, FinishReason::kStop, FinishReason::kEos, FinishReason::kCancelled,
                         FinishReason::kError})
    EXPECT_EQ(rpc::from_proto(rpc::to_proto(r)), r);
  EXPECT_EQ(rpc::to_proto(FinishReason::kNone), v1::FINISH_REASON_UNSPECIFIED);
}

TEST(RpcConvert, EventsBecomeStreamMessages) {
  GenerationEvent e;
  e.ids = {10, 11};
  e.logprobs = {-0.5f, -1.5f};
  e.text = "ab";
  v1::GenerateResponse m;
  rpc::to_proto(e, m);
  EXPECT_EQ(m.text(), "ab");
  EXPECT_EQ(m.token_ids_size(), 2);
  EXPECT_EQ(m.token_ids(1), 11);
  EXPECT_FLOAT_EQ(m.logprobs(1), -1.5f);
  EXPECT_FALSE(m.has_final());
  e.final = true;
  e.reason = FinishReason::kError;
  e.error = "boom";
  e.usage.prompt_tokens = 3;
  e.usage.completion_tokens = 9;
  e.usage.drafted = 8;
  e.usage.accepted = 6;
  e.usage.ttft_ms = 1.5;
  e.usage.total_ms = 7.25;
  rpc::to_proto(e, m);
  ASSERT_TRUE(m.has_final());
  EXPECT_EQ(m.final().finish_reason(), v1::FINISH_REASON_ERROR);
  EXPECT_EQ(m.final().error(), "boom");
  EXPECT_EQ(m.final().usage().prompt_tokens(), 3);
  EXPECT_EQ(m.final().usage().completion_tokens(), 9);
  EXPECT_EQ(m.final().usage().drafted_tokens(), 8);
  EXPECT_EQ(m.final().usage().accepted_tokens(), 6);
  EXPECT_DOUBLE_EQ(m.final().usage().time_to_first_token_ms(), 1.5);
  EXPECT_DOUBLE_EQ(m.final().usage().total_time_ms(), 7.25);
}

TEST(RpcConvert, ServerInfoCountsFreeSlotsAndCopiesCounters) {
  EngineInfo i;
  i.max_seqs = 8;
  i.active = 3;
  i.queued = 2;
  i.admitted = 40;
  i.completed = 30;
  i.cancelled = 5;
  i.failed = 2;
  i.tokens_generated = 1234;
  i.drafted = 100;
  i.accepted = 70;
  i.blocks = 20;
  i.target_steps = 99;
  i.wait_for_draft_s = 0.25;
  i.auto_mode = SpecMode::Pearl;
  i.auto_reason = "why";
  i.ready = true;
  v1::ServerInfo s;
  rpc::to_proto(i, s);
  EXPECT_EQ(s.free_slots(), 5);
  EXPECT_EQ(s.active(), 3);
  EXPECT_EQ(s.queued(), 2);
  EXPECT_TRUE(s.ready());
  EXPECT_FALSE(s.draining());
  EXPECT_EQ(s.counters().admitted(), 40);
  EXPECT_EQ(s.counters().cancelled(), 5);
  EXPECT_EQ(s.counters().tokens_generated(), 1234);
  EXPECT_EQ(s.counters().accepted_tokens(), 70);
  EXPECT_EQ(s.counters().draft_blocks(), 20);
  EXPECT_DOUBLE_EQ(s.counters().wait_for_draft_s(), 0.25);
  EXPECT_EQ(s.speculation().auto_mode(), v1::SPECULATION_PEARL);
  EXPECT_EQ(s.speculation().auto_reason(), "why");
}

TEST(RpcConvert, LayoutListsEveryRank) {
  Layout l;
  l.tp = 2;
  l.pp = 2;
  l.draft_tp = 1;
  v1::Layout out;
  rpc::to_proto(l, 5, out);
  EXPECT_EQ(out.world_size(), 5);
  ASSERT_EQ(out.ranks_size(), 5);
  EXPECT_TRUE(out.ranks(0).coordinator());
  EXPECT_EQ(out.ranks(3).group(), "target");
  EXPECT_EQ(out.ranks(3).stage(), 1);  // stage-major: rank 3 = stage 1, tp rank 1
  EXPECT_EQ(out.ranks(3).tp_rank(), 1);
  EXPECT_EQ(out.ranks(4).group(), "draft");
  EXPECT_EQ(out.ranks(4).draft_rank(), 0);
  ASSERT_EQ(out.layer_split_size(), 2);
  EXPECT_EQ(out.layer_split(0) + out.layer_split(1), 5);
}

TEST(RpcConvert, ErrorCodesMapToGrpcStatuses) {
  EXPECT_EQ(rpc::to_grpc_status(make_error(ErrorCode::InvalidArgument, "x")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(rpc::to_grpc_status(make_error(ErrorCode::ResourceExhausted, "x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(rpc::to_grpc_status(make_error(ErrorCode::Unavailable, "x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  const auto st = rpc::to_grpc_status(make_error("internal {}", 1));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(st.error_message(), "internal 1");
}

namespace {

ChatSetup chat_with(const std::string& tmpl) {
  ChatSetup s;
  auto t = ChatTemplate::parse(tmpl);
  EXPECT_TRUE(t.ok()) << t.error().message;
  s.tmpl = std::make_shared<const ChatTemplate>(std::move(*t));
  s.defaults = chat_options_for(tok().vocab());
  return s;
}

v1::GenerateRequest chat_request(const std::string& messages) {
  v1::GenerateRequest r;
  r.mutable_chat()->set_messages_json(messages);
  return r;
}

}  // namespace

TEST(RpcConvert, ChatPromptsAreRenderedWithTheServersTemplate) {
  const ChatSetup chat =
      chat_with("{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
                "{% if tools %}{{ tools | length }} tools\n{% endif %}{{ extra }}{% if add_generation_prompt %}A:{% endif %}");
  v1::GenerateRequest q = chat_request(R"([{"role": "user", "content": "Once upon a time"}])");
  auto r = rpc::to_engine_request(q, tok(), 2048, chat);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->prompt, encode_chat_prompt(tok(), "<s>user: Once upon a time\nA:"));
  EXPECT_EQ(r->prompt.front(), tok().bos());
  EXPECT_EQ(std::count(r->prompt.begin(), r->prompt.end(), tok().bos()), 1);  // the template's BOS only

  q.mutable_chat()->set_tools_json(R"([{"type": "function"}, {"type": "function"}])");
  q.mutable_chat()->set_variables_json(R"({"extra": "x"})");
  q.mutable_chat()->set_add_generation_prompt(false);
  auto text = rpc::render_chat_prompt(q.chat(), chat);
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, "<s>user: Once upon a time\n2 tools\nx");
}

TEST(RpcConvert, BadChatPromptsAreRejectedWithAClearMessage) {
  const ChatSetup chat = chat_with("{% if messages | length > 1 %}{{ raise_exception('one message only') }}{% endif %}"
                                   "{{ messages[0].content }}");
  auto expect = [&](const v1::GenerateRequest& q, const ChatSetup& c, const std::string& needle) {
    auto out = rpc::to_engine_request(q, tok(), kCtx, c);
    ASSERT_FALSE(out.ok()) << needle;
    EXPECT_EQ(out.error().code, ErrorCode::InvalidArgument);
    EXPECT_NE(out.error().message.find(needle), std::string::npos) << out.error().message;
  };
  expect(chat_request(R"([{"role": "user", "content": "hi"}])"), ChatSetup{nullptr, "model.gguf has no chat template", {}},
         "model.gguf has no chat template");
  expect(chat_request(""), chat, "messages_json is empty");
  expect(chat_request("[{"), chat, "messages_json is not valid JSON");
  expect(chat_request("{}"), chat, "messages_json must be a JSON array");
  expect(chat_request("[]"), chat, "no messages");
  expect(chat_request(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])"), chat,
         "the template raised an error: one message only");
  expect(chat_request(R"([{"role": "user", "content": ""}])"), chat, "rendered no text");
  v1::GenerateRequest q = chat_request(R"([{"role": "user", "content": "hi"}])");
  q.mutable_chat()->set_tools_json("{}");
  expect(q, chat, "tools_json must be a JSON array");
  q.mutable_chat()->clear_tools_json();
  q.mutable_chat()->set_variables_json("[]");
  expect(q, chat, "variables_json must be a JSON object");
}
