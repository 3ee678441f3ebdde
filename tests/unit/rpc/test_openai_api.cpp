// OpenAI request bodies -> tandem.v1 requests (every field, every refusal naming its field), engine
// events -> chunks and responses in OpenAI's shapes, error bodies and statuses, SSE framing.
#include <gtest/gtest.h>

#include "rpc/convert.h"
#include "rpc/http_client.h"
#include "rpc/openai_api.h"
#include "shard/format/model_file.h"

using namespace tandem;
using namespace tandem::rpc;
using nlohmann::json;
namespace oa = tandem::rpc::openai;

namespace {

const Tokenizer& tok() {
  static Tokenizer t = [] {
    auto m = open_model(std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf");
    EXPECT_TRUE(m.ok()) << (m ? "" : m.error().message);
    return *Tokenizer::create(m->vocab);
  }();
  return t;
}

oa::Request parse_ok(const std::string& body, oa::Endpoint ep = oa::Endpoint::Completions) {
  oa::Request r;
  auto err = oa::parse_request(body, ep, r);
  EXPECT_FALSE(err.has_value()) << (err ? err->message : "");
  return r;
}

// Refused with status 400, naming `param`, the message mentioning `needle`.
void expect_refused(const std::string& body, const std::string& param, const std::string& needle,
                    oa::Endpoint ep = oa::Endpoint::Completions) {
  oa::Request r;
  auto err = oa::parse_request(body, ep, r);
  ASSERT_TRUE(err.has_value()) << "accepted: " << body;
  EXPECT_EQ(err->status, 400);
  EXPECT_EQ(err->param, param) << err->message;
  EXPECT_NE(err->message.find(needle), std::string::npos) << err->message;
}

}  // namespace

TEST(OpenAiApi, CompletionFieldsMapToTandemV1) {
  auto r = parse_ok(R"({"model":"m","prompt":"Once upon","max_tokens":7,"temperature":0.5,"top_p":0.9,"seed":42,
                        "stop":["."," end"],"stream":true,"stream_options":{"include_usage":true},"user":"u1",
                        "top_k":5,"min_p":0.05,"repetition_penalty":1.1,"presence_penalty":0.2,"frequency_penalty":0.3,
                        "penalty_last_n":16,"ignore_eos":true,"stop_token_ids":[2],"speculation":"pearl","draft_len":3,
                        "logprobs":2,"unknown_field":{"ignored":true}})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.user, "u1");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
  const auto& g = r.gen;
  EXPECT_EQ(g.text(), "Once upon");
  EXPECT_EQ(g.max_tokens(), 7);
  EXPECT_FLOAT_EQ(g.temperature(), 0.5f);
  EXPECT_FLOAT_EQ(g.top_p(), 0.9f);
  EXPECT_EQ(g.seed(), 42u);
  ASSERT_EQ(g.stop_size(), 2);
  EXPECT_EQ(g.stop(1), " end");
  EXPECT_EQ(g.top_k(), 5);
  EXPECT_FLOAT_EQ(g.min_p(), 0.05f);
  EXPECT_FLOAT_EQ(g.repetition_penalty(), 1.1f);
  EXPECT_FLOAT_EQ(g.presence_penalty(), 0.2f);
  EXPECT_FLOAT_EQ(g.frequency_penalty(), 0.3f);
  EXPECT_EQ(g.penalty_last_n(), 16);
  EXPECT_TRUE(g.ignore_eos());
  EXPECT_EQ(g.stop_token_ids(0), 2);
  EXPECT_EQ(g.speculation(), v1::SPECULATION_PEARL);
  EXPECT_EQ(g.draft_len(), 3);
  EXPECT_TRUE(g.logprobs());
  EXPECT_EQ(g.top_logprobs(), 2);
  // The converted request reaches the engine with the same values.
  auto e = to_engine_request(g, tok(), 512);
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(e->top_logprobs, 2);
  EXPECT_TRUE(e->logprobs);
  EXPECT_EQ(e->stop.max_tokens, 7);
  EXPECT_EQ(e->speculation, SpecMode::Pearl);
}

TEST(OpenAiApi, AbsentFieldsStayAbsentSoTandemDefaultsApply) {
  auto r = parse_ok(R"({"prompt":"Hi","max_tokens":null,"temperature":null})");
  EXPECT_FALSE(r.gen.has_max_tokens());
  EXPECT_FALSE(r.gen.has_temperature());
  EXPECT_FALSE(r.gen.has_top_p());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.logprobs);
  EXPECT_TRUE(r.model.empty());
}

TEST(OpenAiApi, PromptFormsAndMaxCompletionTokensWins) {
  EXPECT_EQ(parse_ok(R"({"prompt":["one string"]})").gen.text(), "one string");
  auto ids = parse_ok(R"({"prompt":[1, 403, 407]})").gen;
  ASSERT_EQ(ids.prompt_case(), v1::GenerateRequest::kIds);
  EXPECT_EQ(ids.ids().ids_size(), 3);
  EXPECT_EQ(parse_ok(R"({"prompt":[[1, 2]]})").gen.ids().ids(1), 2);
  EXPECT_EQ(parse_ok(R"({"prompt":"x","max_tokens":5,"max_completion_tokens":9})").gen.max_tokens(), 9);
}

TEST(OpenAiApi, ChatMessagesBecomeAChatPrompt) {
  auto r = parse_ok(R"({"messages":[{"role":"system","content":"Be brief."},
                                    {"role":"user","content":[{"type":"text","text":"Hel"},{"type":"text","text":"lo"}]}],
                        "tools":[{"type":"function","function":{"name":"f"}}],"chat_template_kwargs":{"enable_thinking":false},
                        "logprobs":true,"top_logprobs":3,"max_completion_tokens":12})",
                    oa::Endpoint::Chat);
  ASSERT_EQ(r.gen.prompt_case(), v1::GenerateRequest::kChat);
  const json messages = json::parse(r.gen.chat().messages_json());
  EXPECT_EQ(messages[1]["content"], "Hello");  // text parts joined: templates read a string
  EXPECT_EQ(messages[0]["role"], "system");
  EXPECT_EQ(json::parse(r.gen.chat().tools_json())[0]["function"]["name"], "f");
  EXPECT_EQ(json::parse(r.gen.chat().variables_json())["enable_thinking"], false);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(r.gen.max_tokens(), 12);
}

TEST(OpenAiApi, RefusalsNameTheField) {
  expect_refused("{not json", "", "not valid JSON");
  expect_refused("[1,2]", "", "must be a JSON object");
  expect_refused(R"({"max_tokens":3})", "prompt", "prompt is required");
  expect_refused(R"({"prompt":7})", "prompt", "string or an array");
  expect_refused(R"({"prompt":["a","b"]})", "prompt", "one per request");
  expect_refused(R"({"prompt":"x","temperature":"hot"})", "temperature", "must be a number");
  expect_refused(R"({"prompt":"x","max_tokens":2.5})", "max_tokens", "must be an integer");
  expect_refused(R"({"prompt":"x","n":2})", "n", "n must be 1");
  expect_refused(R"({"prompt":"x","stream":"yes"})", "stream", "true or false");
  expect_refused(R"({"prompt":"x","stream_options":{"include_usage":true}})", "stream_options", "only allowed with stream");
  expect_refused(R"({"prompt":"x","stop":[1]})", "stop", "array of strings");
  expect_refused(R"({"prompt":"x","speculation":"fast"})", "speculation", "auto, off, sd, pearl");
  expect_refused(R"({"prompt":"x","logprobs":9})", "logprobs", "[0, 5]");
  expect_refused(R"({"prompt":"x","logit_bias":{"1":5}})", "logit_bias", "not supported");
  expect_refused(R"({"prompt":"x","seed":-1})", "seed", ">= 0");
  expect_refused(R"({"prompt":[1,2],"echo":true})", "echo", "text prompt");
  expect_refused(R"({"prompt":"x"})", "messages", "messages is required", oa::Endpoint::Chat);
  expect_refused(R"({"messages":[]})", "messages", "empty", oa::Endpoint::Chat);
  expect_refused(R"({"messages":[{"content":"hi"}]})", "messages", "role is required", oa::Endpoint::Chat);
  expect_refused(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages", "only", oa::Endpoint::Chat);
  expect_refused(R"({"messages":[{"role":"user","content":"hi"}],"top_logprobs":2})", "top_logprobs", "needs logprobs",
                 oa::Endpoint::Chat);
  expect_refused(R"({"messages":[{"role":"user","content":"hi"}],"tool_choice":"required"})", "tool_choice", "auto",
                 oa::Endpoint::Chat);
  expect_refused(R"({"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}})",
                 "response_format", "text", oa::Endpoint::Chat);
}

TEST(OpenAiApi, EngineErrorsMapToStatusesAndFields) {
  // Range checks happen in to_engine_request; api_error finds the field its message names.
  auto r = parse_ok(R"({"prompt":"Hi","top_p":1.5})");
  auto e = to_engine_request(r.gen, tok(), 512);
  ASSERT_FALSE(e.ok());
  auto a = oa::api_error(e.error(), oa::Endpoint::Completions);
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.param, "top_p");
  auto big = parse_ok(R"({"prompt":"Hi","max_tokens":100000})");
  auto e2 = to_engine_request(big.gen, tok(), 512);
  ASSERT_FALSE(e2.ok());
  EXPECT_EQ(oa::api_error(e2.error(), oa::Endpoint::Completions).param, "max_tokens");
  auto empty = parse_ok(R"({"prompt":""})");
  auto e3 = to_engine_request(empty.gen, tok(), 512);
  ASSERT_FALSE(e3.ok());
  EXPECT_EQ(oa::api_error(e3.error(), oa::Endpoint::Completions).param, "prompt");
  EXPECT_EQ(oa::api_error(make_error(ErrorCode::ResourceExhausted, "queue full"), oa::Endpoint::Chat).status, 429);
  EXPECT_EQ(oa::api_error(make_error(ErrorCode::Unavailable, "draining"), oa::Endpoint::Chat).status, 503);
  EXPECT_EQ(oa::api_error(make_error("boom"), oa::Endpoint::Chat).status, 500);
  EXPECT_EQ(oa::missing_key_error(false).status, 401);
  auto nf = oa::model_not_found("gpt-4", "stories260K");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.param, "model");
  const json body = json::parse(oa::error_body(nf));
  EXPECT_EQ(body["error"]["code"], "model_not_found");
  EXPECT_EQ(body["error"]["param"], "model");
  EXPECT_TRUE(body["error"]["message"].get<std::string>().find("stories260K") != std::string::npos);
  EXPECT_TRUE(json::parse(oa::error_body(oa::missing_key_error(true)))["error"]["param"].is_null());
}

TEST(OpenAiApi, ChatStreamChunksHaveOpenAisShape) {
  auto r = parse_ok(R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},
                        "logprobs":true,"top_logprobs":2,"return_token_ids":true})",
                    oa::Endpoint::Chat);
  oa::ResponseContext c{"chatcmpl-1", "stories260K", 1700000000, &tok()};
  oa::StreamState st;
  json first = oa::first_chunk(r, c, st);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["usage"].is_null());  // include_usage: null on every chunk but the last
  GenerationEvent e;
  e.ids = {tok().encode("cat", false)[0]};
  e.text = "cat";
  e.logprobs = {-0.5f};
  e.top_logprobs = {{{e.ids[0], -0.5f}, {5, -1.5f}}};
  json ch = oa::event_chunk(r, c, e, st);
  EXPECT_EQ(ch["choices"][0]["delta"]["content"], "cat");
  EXPECT_FALSE(ch["choices"][0]["delta"].contains("role"));
  EXPECT_EQ(ch["choices"][0]["token_ids"], json(e.ids));
  const json& lp = ch["choices"][0]["logprobs"]["content"][0];
  EXPECT_FLOAT_EQ(lp["logprob"].get<float>(), -0.5f);
  EXPECT_EQ(lp["top_logprobs"].size(), 2u);
  EXPECT_EQ(lp["bytes"].size(), lp["token"].get<std::string>().size());
  EXPECT_TRUE(ch["choices"][0]["finish_reason"].is_null());
  json fin = oa::finish_chunk(r, c, FinishReason::kEos);
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(fin["choices"][0]["delta"].empty());
  Usage u;
  u.prompt_tokens = 4;
  u.completion_tokens = 3;
  u.drafted = 5;
  u.accepted = 2;
  u.mode = SpecMode::Pearl;
  json us = oa::usage_chunk(r, c, u);
  EXPECT_TRUE(us["choices"].empty());
  EXPECT_EQ(us["usage"]["total_tokens"], 7);
  EXPECT_EQ(us["usage"]["speculation"]["mode"], "pearl");
  EXPECT_EQ(us["usage"]["speculation"]["accepted_tokens"], 2);
  EXPECT_EQ(oa::finish_reason_json(FinishReason::kLength), "length");
  EXPECT_TRUE(oa::finish_reason_json(FinishReason::kCancelled).is_null());
}

TEST(OpenAiApi, CompletionResponseJoinsEventsAndOffsetsTokens) {
  auto r = parse_ok(R"({"prompt":"Once","logprobs":1})");
  oa::ResponseContext c{"cmpl-1", "m", 1, &tok()};
  const auto a = tok().encode(" upon", false), b = tok().encode(" a", false);
  GenerationEvent e1, e2;
  e1.ids = a;
  e1.text = " upon";
  e1.logprobs.assign(a.size(), -1.0f);
  e1.top_logprobs.assign(a.size(), {{a[0], -1.0f}});
  e2.ids = b;
  e2.text = " a";
  e2.logprobs.assign(b.size(), -2.0f);
  e2.top_logprobs.assign(b.size(), {{b[0], -2.0f}});
  e2.final = true;
  e2.reason = FinishReason::kLength;
  e2.usage.prompt_tokens = 2;
  e2.usage.completion_tokens = static_cast<int>(a.size() + b.size());
  json full = oa::full_response(r, c, {e1, e2});
  EXPECT_EQ(full["object"], "text_completion");
  const json& ch = full["choices"][0];
  EXPECT_EQ(ch["text"], " upon a");
  EXPECT_EQ(ch["finish_reason"], "length");
  EXPECT_EQ(ch["logprobs"]["tokens"].size(), a.size() + b.size());
  EXPECT_EQ(ch["logprobs"]["text_offset"][0], 0);
  size_t first_event_bytes = 0;  // offsets continue across events
  for (size_t i = 0; i < a.size(); ++i) first_event_bytes += ch["logprobs"]["tokens"][i].get<std::string>().size();
  EXPECT_EQ(ch["logprobs"]["text_offset"][a.size()], first_event_bytes);
  EXPECT_EQ(ch["logprobs"]["top_logprobs"][0].size(), 1u);
  EXPECT_EQ(full["usage"]["completion_tokens"], static_cast<int>(a.size() + b.size()));
  // echo prepends the prompt to the text.
  auto echo = parse_ok(R"({"prompt":"Once","echo":true})");
  EXPECT_EQ(oa::full_response(echo, c, {e1, e2})["choices"][0]["text"], "Once upon a");
  EXPECT_TRUE(oa::full_response(echo, c, {e1, e2})["choices"][0]["logprobs"].is_null());
}

TEST(OpenAiApi, SseFramingRoundTrips) {
  const std::string a = oa::sse_data(json{{"x", 1}}), b = oa::sse_data(json{{"y", "two\nlines"}});
  EXPECT_EQ(a, "data: {\"x\":1}\n\n");
  std::string buf = a + b + std::string(oa::kDone) + "data: {\"partial";
  auto events = take_sse_events(buf);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(json::parse(events[1])["y"], "two\nlines");  // JSON escapes keep one event on one line
  EXPECT_EQ(events[2], "[DONE]");
  EXPECT_EQ(buf, "data: {\"partial");  // the unfinished event waits for more bytes
  // Invalid UTF-8 in a token piece never breaks the JSON.
  EXPECT_NO_THROW(json::parse(oa::dump(json{{"t", std::string("\xE2\x96")}})));
}
