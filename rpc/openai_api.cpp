#include "rpc/openai_api.h"

#include <algorithm>
#include <cmath>

#include "rpc/convert.h"

namespace tandem::rpc::openai {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

ApiError bad(std::string param, std::string message) {
  ApiError e;
  e.param = std::move(param);
  e.message = std::move(message);
  return e;
}

const char* kind(const ojson& v) { return v.type_name(); }

// Typed getters: absent or null -> nullopt; a wrong type -> an error naming the field.
struct Fields {
  const ojson& body;
  std::optional<ApiError> err;

  const ojson* get(const char* name) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::optional<double> number(const char* name) {
    const ojson* v = get(name);
    if (!v || err) return std::nullopt;
    if (!v->is_number()) {
      err = bad(name, fmt::format("{} must be a number (got {})", name, kind(*v)));
      return std::nullopt;
    }
    return v->get<double>();
  }
  std::optional<int64_t> integer(const char* name) {
    const ojson* v = get(name);
    if (!v || err) return std::nullopt;
    if (!v->is_number_integer() && !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>())) {
      err = bad(name, fmt::format("{} must be an integer (got {})", name, v->is_number() ? v->dump() : kind(*v)));
      return std::nullopt;
    }
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      err = bad(name, fmt::format("{} is out of range (got {})", name, v->dump()));
      return std::nullopt;
    }
    return v->is_number_float() ? static_cast<int64_t>(v->get<double>()) : v->get<int64_t>();
  }
  std::optional<int32_t> int32(const char* name) {
    auto v = integer(name);
    if (!v) return std::nullopt;
    if (*v < INT32_MIN || *v > INT32_MAX) {
      err = bad(name, fmt::format("{} is out of range (got {})", name, *v));
      return std::nullopt;
    }
    return static_cast<int32_t>(*v);
  }
  std::optional<bool> boolean(const char* name) {
    const ojson* v = get(name);
    if (!v || err) return std::nullopt;
    if (!v->is_boolean()) {
      err = bad(name, fmt::format("{} must be true or false (got {})", name, kind(*v)));
      return std::nullopt;
    }
    return v->get<bool>();
  }
  std::optional<std::string> string(const char* name) {
    const ojson* v = get(name);
    if (!v || err) return std::nullopt;
    if (!v->is_string()) {
      err = bad(name, fmt::format("{} must be a string (got {})", name, kind(*v)));
      return std::nullopt;
    }
    return v->get<std::string>();
  }
};

// Chat content: a string, null, or an array of parts of which only text parts are understood.
std::optional<ApiError> normalize_content(ojson& msg, size_t i) {
  auto it = msg.find("content");
  if (it == msg.end() || it->is_string() || it->is_null()) return std::nullopt;
  if (!it->is_array())
    return bad("messages", fmt::format("messages[{}].content must be a string or an array of parts (got {})", i, kind(*it)));
  std::string text;
  for (size_t j = 0; j < it->size(); ++j) {
    const ojson& part = (*it)[j];
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      return bad("messages", fmt::format("messages[{}].content[{}]: only {{\"type\": \"text\", \"text\": …}} parts are "
                                         "supported (this server serves a text model)", i, j));
    text += part["text"].get<std::string>();
  }
  *it = text;
  return std::nullopt;
}

std::optional<ApiError> parse_prompt(const ojson& p, Request& out) {
  auto set_ids = [&](const ojson& arr) -> std::optional<ApiError> {
    auto* ids = out.gen.mutable_ids();
    for (const auto& v : arr) {
      if (!v.is_number_integer()) return bad("prompt", "prompt: an array prompt must hold token ids (integers) or one string");
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id > INT32_MAX) return bad("prompt", fmt::format("prompt: token id {} is out of range", id));
      ids->add_ids(static_cast<int32_t>(id));
    }
    return std::nullopt;
  };
  if (p.is_string()) {
    out.gen.set_text(p.get<std::string>());
    out.echo_text = p.get<std::string>();
    return std::nullopt;
  }
  if (!p.is_array()) return bad("prompt", fmt::format("prompt must be a string or an array (got {})", kind(p)));
  if (p.empty()) return bad("prompt", "prompt is empty");
  if (p[0].is_string() || p[0].is_array()) {
    if (p.size() != 1)
      return bad("prompt", fmt::format("prompt: {} prompts in one request; this server takes one per request (send them "
                                       "as separate requests, which it batches)", p.size()));
    if (p[0].is_string()) return parse_prompt(p[0], out);
    return set_ids(p[0]);
  }
  return set_ids(p);
}

// Which request field a tandem.v1 validation message is about ("sampling: top_p must …").
std::string param_of(std::string_view msg, Endpoint ep) {
  static const std::vector<std::string> kFields = {
      "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty",
      "penalty_last_n", "max_tokens", "stop_token_ids", "stop string", "draft_len", "top_logprobs", "speculation",
      "prompt", "chat"};
  size_t best = std::string_view::npos;
  std::string out;
  for (const auto& f : kFields) {
    size_t at = 0;
    while ((at = msg.find(f, at)) != std::string_view::npos) {
      const bool start = at == 0 || !(std::isalnum(static_cast<unsigned char>(msg[at - 1])) || msg[at - 1] == '_');
      const size_t end = at + f.size();
      const bool stop = end >= msg.size() || !(std::isalnum(static_cast<unsigned char>(msg[end])) || msg[end] == '_');
      if (start && stop) break;
      at = end;
    }
    // The prompt is named only when no parameter is ("prompt (9 tokens) + max_tokens …" is about max_tokens).
    const bool weak = f == "prompt" || f == "chat";
    const size_t rank = at == std::string_view::npos ? at : weak ? msg.size() + at : at;
    if (rank < best) {
      best = rank;
      out = f;
    }
  }
  if (out == "stop string") out = "stop";
  if (out == "prompt" || out == "chat") out = ep == Endpoint::Chat ? "messages" : "prompt";
  return out;
}

std::string token_text(const Tokenizer& tok, int32_t id) { return tok.token_bytes(id, /*render_special=*/true); }

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

// Logprobs of the tokens of one event, in the endpoint's shape; null when not asked for.
json logprobs_json(const Request& r, const ResponseContext& c, const GenerationEvent& e, StreamState& st) {
  if (!r.logprobs || e.ids.empty()) return nullptr;
  const Tokenizer& tok = *c.tok;
  if (r.endpoint == Endpoint::Chat) {
    json content = json::array();
    for (size_t i = 0; i < e.ids.size(); ++i) {
      const std::string t = token_text(tok, e.ids[i]);
      json top = json::array();
      if (i < e.top_logprobs.size())
        for (const auto& tl : e.top_logprobs[i]) {
          const std::string tt = token_text(tok, tl.id);
          top.push_back({{"token", tt}, {"logprob", tl.logprob}, {"bytes", bytes_of(tt)}});
        }
      content.push_back({{"token", t},
                         {"logprob", i < e.logprobs.size() ? e.logprobs[i] : 0.0f},
                         {"bytes", bytes_of(t)},
                         {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json tokens = json::array(), lps = json::array(), tops = r.top_logprobs > 0 ? json::array() : json(nullptr),
       offsets = json::array();
  for (size_t i = 0; i < e.ids.size(); ++i) {
    const std::string t = token_text(tok, e.ids[i]);
    tokens.push_back(t);
    lps.push_back(i < e.logprobs.size() ? e.logprobs[i] : 0.0f);
    offsets.push_back(st.text_offset);
    st.text_offset += t.size();
    if (r.top_logprobs > 0) {
      json m = json::object();
      if (i < e.top_logprobs.size())
        for (const auto& tl : e.top_logprobs[i]) m[token_text(tok, tl.id)] = tl.logprob;
      tops.push_back(m);
    }
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chunk_base(const Request& r, const ResponseContext& c) {
  json j = {{"id", c.id},
            {"object", r.endpoint == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
            {"created", c.created},
            {"model", c.model},
            {"system_fingerprint", nullptr}};
  if (r.include_usage) j["usage"] = nullptr;
  return j;
}

json choice(const Request& r, const std::string& text, json logprobs, json finish, bool role = false) {
  if (r.endpoint == Endpoint::Chat) {
    json delta = json::object();
    if (role) delta["role"] = "assistant";
    if (role || !text.empty()) delta["content"] = text;
    return {{"index", 0}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}};
  }
  return {{"text", text}, {"index", 0}, {"logprobs", logprobs}, {"finish_reason", finish}};
}

}  // namespace

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_body(const ApiError& e) {
  json err = {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return dump(json{{"error", err}});
}

ApiError api_error(const Error& e, Endpoint ep) {
  ApiError a;
  a.message = e.message;
  switch (e.code) {
    case ErrorCode::InvalidArgument: a.status = 400; a.param = param_of(e.message, ep); break;
    case ErrorCode::ResourceExhausted: a.status = 429; a.type = "rate_limit_error"; a.code = "queue_full"; break;
    case ErrorCode::Unavailable: a.status = 503; a.type = "server_error"; a.code = "unavailable"; break;
    case ErrorCode::Internal: a.status = 500; a.type = "server_error"; break;
  }
  return a;
}

ApiError missing_key_error(bool key_given) {
  ApiError a;
  a.status = 401;
  a.type = "authentication_error";
  a.code = "invalid_api_key";
  a.message = key_given ? "incorrect API key provided" : "missing API key: send the header 'Authorization: Bearer <key>'";
  return a;
}

ApiError model_not_found(std::string_view asked, std::string_view served) {
  ApiError a;
  a.status = 404;
  a.param = "model";
  a.code = "model_not_found";
  a.message = fmt::format("the model '{}' does not exist here; this server serves '{}' (GET /v1/models)", asked, served);
  return a;
}

std::optional<ApiError> parse_request(std::string_view body, Endpoint ep, Request& out) {
  out = Request{};
  out.endpoint = ep;
  ojson j;
  try {
    j = ojson::parse(body);
  } catch (const std::exception& e) {
    return bad("", fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) return bad("", fmt::format("the request body must be a JSON object (got {})", kind(j)));
  Fields f{j, std::nullopt};
  auto& g = out.gen;

  if (auto m = f.string("model")) out.model = *m;
  if (auto u = f.string("user")) out.user = *u;
  if (ep == Endpoint::Completions) {
    const ojson* p = f.get("prompt");
    if (!p) return bad("prompt", "prompt is required");
    if (auto e = parse_prompt(*p, out)) return e;
    if (auto echo = f.boolean("echo")) out.echo = *echo;
    if (auto suffix = f.string("suffix"); suffix && !suffix->empty()) return bad("suffix", "suffix is not supported");
    if (auto best_of = f.integer("best_of"); best_of && *best_of != 1) return bad("best_of", "best_of must be 1");
    if (const ojson* lp = f.get("logprobs")) {
      if (!lp->is_number_integer() || lp->get<int64_t>() < 0 || lp->get<int64_t>() > 5)
        return bad("logprobs", fmt::format("logprobs must be an integer in [0, 5] (got {})", lp->dump()));
      out.logprobs = true;
      out.top_logprobs = static_cast<int>(lp->get<int64_t>());
    }
    if (out.echo && out.gen.prompt_case() != v1::GenerateRequest::kText)
      return bad("echo", "echo needs a text prompt");
    if (out.echo && out.logprobs) return bad("echo", "echo with logprobs (prompt logprobs) is not supported");
  } else {
    const ojson* m = f.get("messages");
    if (!m) return bad("messages", "messages is required");
    if (!m->is_array()) return bad("messages", fmt::format("messages must be an array (got {})", kind(*m)));
    if (m->empty()) return bad("messages", "messages is empty");
    ojson messages = *m;
    for (size_t i = 0; i < messages.size(); ++i) {
      ojson& msg = messages[i];
      if (!msg.is_object()) return bad("messages", fmt::format("messages[{}] must be an object (got {})", i, kind(msg)));
      if (!msg.contains("role") || !msg["role"].is_string())
        return bad("messages", fmt::format("messages[{}].role is required (a string)", i));
      if (auto e = normalize_content(msg, i)) return e;
    }
    auto* chat = g.mutable_chat();
    chat->set_messages_json(messages.dump());
    if (const ojson* tools = f.get("tools")) {
      if (!tools->is_array()) return bad("tools", fmt::format("tools must be an array (got {})", kind(*tools)));
      chat->set_tools_json(tools->dump());
    }
    if (const ojson* tc = f.get("tool_choice"))
      if (!(tc->is_string() && (*tc == "auto" || *tc == "none")))
        return bad("tool_choice", "tool_choice: only \"auto\" and \"none\" are supported (tool calls are not forced)");
    if (const ojson* kw = f.get("chat_template_kwargs")) {
      if (!kw->is_object())
        return bad("chat_template_kwargs", fmt::format("chat_template_kwargs must be an object (got {})", kind(*kw)));
      chat->set_variables_json(kw->dump());
    }
    if (auto agp = f.boolean("add_generation_prompt")) chat->set_add_generation_prompt(*agp);
    if (auto lp = f.boolean("logprobs")) out.logprobs = *lp;
    if (auto top = f.integer("top_logprobs")) {
      if (*top < 0 || *top > kMaxTopLogprobs)
        return bad("top_logprobs", fmt::format("top_logprobs must be in [0, {}] (got {})", kMaxTopLogprobs, *top));
      if (*top > 0 && !out.logprobs) return bad("top_logprobs", "top_logprobs needs logprobs: true");
      out.top_logprobs = static_cast<int>(*top);
    }
    if (const ojson* rf = f.get("response_format"))
      if (!rf->is_object() || rf->value("type", "") != "text")
        return bad("response_format", "response_format: only {\"type\": \"text\"} is supported");
  }
  if (f.err) return f.err;

  if (auto n = f.integer("n"); n && *n != 1) return bad("n", fmt::format("n must be 1 (got {}): send one request per choice", *n));
  if (const ojson* lb = f.get("logit_bias"); lb && !(lb->is_object() && lb->empty()))
    return bad("logit_bias", "logit_bias is not supported");
  if (auto s = f.boolean("stream")) out.stream = *s;
  if (const ojson* so = f.get("stream_options")) {
    if (!out.stream) return bad("stream_options", "stream_options is only allowed with stream: true");
    if (!so->is_object()) return bad("stream_options", fmt::format("stream_options must be an object (got {})", kind(*so)));
    Fields sf{*so, std::nullopt};
    if (auto iu = sf.boolean("include_usage")) out.include_usage = *iu;
    if (sf.err) {
      sf.err->param = "stream_options." + sf.err->param;
      return sf.err;
    }
  }
  // max_completion_tokens is the newer name; it wins when both are sent.
  std::optional<int32_t> max_tokens = f.int32("max_tokens");
  if (auto mct = f.int32("max_completion_tokens")) max_tokens = mct;
  if (max_tokens) g.set_max_tokens(*max_tokens);
  if (auto v = f.number("temperature")) g.set_temperature(static_cast<float>(*v));
  if (auto v = f.number("top_p")) g.set_top_p(static_cast<float>(*v));
  if (auto v = f.int32("top_k")) g.set_top_k(*v);
  if (auto v = f.number("min_p")) g.set_min_p(static_cast<float>(*v));
  if (auto v = f.number("repetition_penalty")) g.set_repetition_penalty(static_cast<float>(*v));
  if (auto v = f.number("presence_penalty")) g.set_presence_penalty(static_cast<float>(*v));
  if (auto v = f.number("frequency_penalty")) g.set_frequency_penalty(static_cast<float>(*v));
  if (auto v = f.int32("penalty_last_n")) g.set_penalty_last_n(*v);
  if (auto v = f.integer("seed")) {
    if (*v < 0) return bad("seed", fmt::format("seed must be >= 0 (got {})", *v));
    g.set_seed(static_cast<uint64_t>(*v));
  }
  if (auto v = f.boolean("ignore_eos")) g.set_ignore_eos(*v);
  if (auto v = f.boolean("return_token_ids")) out.return_token_ids = *v;
  if (auto v = f.int32("draft_len")) g.set_draft_len(*v);
  if (auto v = f.string("speculation")) {
    auto m = parse_spec_mode(*v);
    if (!m) return bad("speculation", fmt::format("speculation must be one of auto, off, sd, pearl (got '{}')", *v));
    g.set_speculation(to_proto(*m));
  }
  if (f.err) return f.err;
  if (const ojson* stop = f.get("stop")) {
    if (stop->is_string()) {
      g.add_stop(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const auto& s : *stop) {
        if (!s.is_string()) return bad("stop", "stop must be a string or an array of strings");
        g.add_stop(s.get<std::string>());
      }
    } else {
      return bad("stop", fmt::format("stop must be a string or an array of strings (got {})", kind(*stop)));
    }
  }
  if (const ojson* ids = f.get("stop_token_ids")) {
    if (!ids->is_array()) return bad("stop_token_ids", "stop_token_ids must be an array of integers");
    for (const auto& v : *ids) {
      if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
        return bad("stop_token_ids", "stop_token_ids must be an array of integers");
      g.add_stop_token_ids(static_cast<int32_t>(v.get<int64_t>()));
    }
  }
  g.set_logprobs(out.logprobs);
  if (out.top_logprobs > 0) g.set_top_logprobs(out.top_logprobs);
  return std::nullopt;
}

json finish_reason_json(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop:
    case FinishReason::kEos: return "stop";
    default: return nullptr;
  }
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"speculation",
           {{"mode", spec_mode_name(u.mode)}, {"drafted_tokens", u.drafted}, {"accepted_tokens", u.accepted}}}};
}

json first_chunk(const Request& r, const ResponseContext& c, StreamState& st) {
  if (r.endpoint == Endpoint::Completions && !r.echo) return nullptr;
  json j = chunk_base(r, c);
  const std::string text = r.endpoint == Endpoint::Completions ? r.echo_text : "";
  j["choices"] = json::array({choice(r, text, nullptr, nullptr, /*role=*/true)});
  st.text_offset += text.size();
  return j;
}

json event_chunk(const Request& r, const ResponseContext& c, const GenerationEvent& e, StreamState& st) {
  if (e.text.empty() && (e.ids.empty() || !(r.logprobs || r.return_token_ids))) return nullptr;
  json j = chunk_base(r, c);
  j["choices"] = json::array({choice(r, e.text, logprobs_json(r, c, e, st), nullptr)});
  if (r.return_token_ids) j["choices"][0]["token_ids"] = e.ids;
  return j;
}

json finish_chunk(const Request& r, const ResponseContext& c, FinishReason reason) {
  json j = chunk_base(r, c);
  j["choices"] = json::array({choice(r, "", nullptr, finish_reason_json(reason))});
  return j;
}

json usage_chunk(const Request& r, const ResponseContext& c, const Usage& u) {
  json j = chunk_base(r, c);
  j["choices"] = json::array();
  j["usage"] = usage_json(u);
  return j;
}

json full_response(const Request& r, const ResponseContext& c, const std::vector<GenerationEvent>& events) {
  GenerationEvent all;
  StreamState st;
  std::string text = r.echo ? r.echo_text : "";
  st.text_offset = text.size();
  for (const auto& e : events) {
    all.ids.insert(all.ids.end(), e.ids.begin(), e.ids.end());
    all.logprobs.insert(all.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
    all.top_logprobs.insert(all.top_logprobs.end(), e.top_logprobs.begin(), e.top_logprobs.end());
    text += e.text;
    if (e.final) {
      all.reason = e.reason;
      all.usage = e.usage;
    }
  }
  json lp = logprobs_json(r, c, all, st);
  if (r.logprobs && lp.is_null())  // asked for, nothing generated
    lp = r.endpoint == Endpoint::Chat
             ? json{{"content", json::array()}, {"refusal", nullptr}}
             : json{{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", r.top_logprobs > 0 ? json::array() : json(nullptr)}, {"text_offset", json::array()}};
  json ch;
  if (r.endpoint == Endpoint::Chat)
    ch = {{"index", 0},
          {"message", {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}}},
          {"logprobs", lp},
          {"finish_reason", finish_reason_json(all.reason)}};
  else
    ch = {{"text", text}, {"index", 0}, {"logprobs", lp}, {"finish_reason", finish_reason_json(all.reason)}};
  if (r.return_token_ids) ch["token_ids"] = all.ids;
  return {{"id", c.id},
          {"object", r.endpoint == Endpoint::Chat ? "chat.completion" : "text_completion"},
          {"created", c.created},
          {"model", c.model},
          {"system_fingerprint", nullptr},
          {"choices", json::array({ch})},
          {"usage", usage_json(all.usage)}};
}

std::string sse_data(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace tandem::rpc::openai
