#include "rpc/convert.h"

#include <map>

#include "shard/model/shard_spec.h"

namespace tandem::rpc {
namespace {

Error invalid(Error e) {
  e.code = ErrorCode::InvalidArgument;
  return e;
}

Result<nlohmann::ordered_json> json_field(const std::string& name, const std::string& text, bool want_array) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::InvalidArgument, "chat.{} is not valid JSON: {}", name, e.what());
  }
  if (want_array ? !j.is_array() : !j.is_object())
    return make_error(ErrorCode::InvalidArgument, "chat.{} must be a JSON {} (got {})", name,
                      want_array ? "array" : "object", j.type_name());
  return j;
}

}  // namespace

Result<std::string> render_chat_prompt(const v1::ChatPrompt& in, const ChatSetup& chat) {
  if (!chat.tmpl)
    return make_error(ErrorCode::InvalidArgument, "this server cannot render chat prompts: {}",
                      chat.unavailable.empty() ? "it has no chat template" : chat.unavailable);
  if (in.messages_json().empty()) return make_error(ErrorCode::InvalidArgument, "chat.messages_json is empty");
  auto messages = json_field("messages_json", in.messages_json(), true);
  if (!messages) return messages.error();
  if (messages->empty()) return make_error(ErrorCode::InvalidArgument, "chat.messages_json has no messages");
  ChatOptions opt = chat.defaults;
  if (!in.tools_json().empty()) {
    auto tools = json_field("tools_json", in.tools_json(), true);
    if (!tools) return tools.error();
    opt.tools = std::move(*tools);
  }
  if (!in.variables_json().empty()) {
    auto vars = json_field("variables_json", in.variables_json(), false);
    if (!vars) return vars.error();
    opt.variables = std::move(*vars);
  }
  opt.add_generation_prompt = in.has_add_generation_prompt() ? in.add_generation_prompt() : true;
  return chat.tmpl->render(*messages, opt);
}

Result<GenerationRequest> to_engine_request(const v1::GenerateRequest& in, const Tokenizer& tok, int ctx,
                                            const ChatSetup& chat) {
  GenerationRequest r;
  r.id = in.request_id();
  switch (in.prompt_case()) {
    case v1::GenerateRequest::kText:
      if (in.text().empty()) return make_error(ErrorCode::InvalidArgument, "the prompt is empty (text is \"\")");
      r.prompt = tok.encode(in.text(), in.has_add_bos() ? in.add_bos() : true);
      break;
    case v1::GenerateRequest::kIds:
      r.prompt.assign(in.ids().ids().begin(), in.ids().ids().end());
      if (r.prompt.empty()) return make_error(ErrorCode::InvalidArgument, "the prompt is empty (ids has no tokens)");
      break;
    case v1::GenerateRequest::kChat: {
      auto text = render_chat_prompt(in.chat(), chat);
      if (!text) return invalid(text.error());
      r.prompt = encode_chat_prompt(tok, *text);
      if (r.prompt.empty())
        return make_error(ErrorCode::InvalidArgument, "the prompt is empty: the chat template rendered no text");
      break;
    }
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return make_error(ErrorCode::InvalidArgument, "the prompt is empty: set either text or ids (or chat)");
  }
  if (r.prompt.empty()) return make_error(ErrorCode::InvalidArgument, "the prompt is empty after tokenization");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (!tok.valid(r.prompt[i]))
      return make_error(ErrorCode::InvalidArgument, "prompt token ids[{}] = {} is not in the vocabulary [0, {})", i,
                        r.prompt[i], tok.n_vocab());
  const int n_prompt = static_cast<int>(r.prompt.size());
  if (n_prompt >= ctx)
    return make_error(ErrorCode::InvalidArgument,
                      "the prompt has {} tokens but the context holds {} positions, leaving no room to generate",
                      n_prompt, ctx);

  auto& sp = r.sampling;
  if (in.has_temperature()) sp.temperature = in.temperature();
  if (in.has_top_k()) sp.top_k = in.top_k();
  if (in.has_top_p()) sp.top_p = in.top_p();
  if (in.has_min_p()) sp.min_p = in.min_p();
  if (in.has_repetition_penalty()) sp.repetition_penalty = in.repetition_penalty();
  if (in.has_presence_penalty()) sp.presence_penalty = in.presence_penalty();
  if (in.has_frequency_penalty()) sp.frequency_penalty = in.frequency_penalty();
  if (in.has_penalty_last_n()) sp.penalty_last_n = in.penalty_last_n();
  if (in.has_seed()) sp.seed = in.seed();
  if (auto st = validate(sp); !st) return invalid(st.error());

  auto& stop = r.stop;
  if (in.has_max_tokens()) {
    if (in.max_tokens() < 1)
      return make_error(ErrorCode::InvalidArgument, "max_tokens must be at least 1 (got {})", in.max_tokens());
    if (static_cast<int64_t>(n_prompt) + in.max_tokens() > ctx)
      return make_error(ErrorCode::InvalidArgument,
                        "prompt ({} tokens) + max_tokens ({}) is {}, beyond the context size {}; ask for at most {} tokens",
                        n_prompt, in.max_tokens(), static_cast<int64_t>(n_prompt) + in.max_tokens(), ctx, ctx - n_prompt);
    stop.max_tokens = in.max_tokens();
  } else {
    stop.max_tokens = std::min(kDefaultMaxTokens, ctx - n_prompt);
  }
  stop.stop.assign(in.stop().begin(), in.stop().end());
  stop.stop_token_ids.assign(in.stop_token_ids().begin(), in.stop_token_ids().end());
  stop.ignore_eos = in.ignore_eos();
  if (auto st = validate(stop); !st) return invalid(st.error());
  for (size_t i = 0; i < stop.stop_token_ids.size(); ++i)
    if (!tok.valid(stop.stop_token_ids[i]))
      return make_error(ErrorCode::InvalidArgument, "stop_token_ids[{}] = {} is not in the vocabulary [0, {})", i,
                        stop.stop_token_ids[i], tok.n_vocab());

  r.speculation = from_proto(in.speculation());
  if (in.has_draft_len()) {
    if (in.draft_len() < 0)
      return make_error(ErrorCode::InvalidArgument, "draft_len must be >= 0, 0 = the server's setting (got {})",
                        in.draft_len());
    r.draft_len = in.draft_len();
  }
  r.logprobs = in.logprobs();
  if (in.has_top_logprobs()) {
    if (in.top_logprobs() < 0 || in.top_logprobs() > kMaxTopLogprobs)
      return make_error(ErrorCode::InvalidArgument, "top_logprobs must be in [0, {}] (got {})", kMaxTopLogprobs,
                        in.top_logprobs());
    r.top_logprobs = in.top_logprobs();
    r.logprobs = r.logprobs || r.top_logprobs > 0;
  }
  return r;
}

SpecMode from_proto(v1::Speculation s) {
  switch (s) {
    case v1::SPECULATION_OFF: return SpecMode::Off;
    case v1::SPECULATION_SD: return SpecMode::Sd;
    case v1::SPECULATION_PEARL: return SpecMode::Pearl;
    default: return SpecMode::Auto;  // includes values from a newer client: the server decides
  }
}

v1::Speculation to_proto(SpecMode m) {
  switch (m) {
    case SpecMode::Off: return v1::SPECULATION_OFF;
    case SpecMode::Sd: return v1::SPECULATION_SD;
    case SpecMode::Pearl: return v1::SPECULATION_PEARL;
    case SpecMode::Auto: break;
  }
  return v1::SPECULATION_AUTO;
}

v1::FinishReason to_proto(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kEos: return v1::FINISH_REASON_EOS;
    case FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kError: return v1::FINISH_REASON_ERROR;
    case FinishReason::kNone: break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

FinishReason from_proto(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_LENGTH: return FinishReason::kLength;
    case v1::FINISH_REASON_STOP: return FinishReason::kStop;
    case v1::FINISH_REASON_EOS: return FinishReason::kEos;
    case v1::FINISH_REASON_CANCELLED: return FinishReason::kCancelled;
    case v1::FINISH_REASON_ERROR: return FinishReason::kError;
    default: return FinishReason::kNone;
  }
}

void to_proto(const Usage& u, v1::Usage& out) {
  out.set_prompt_tokens(u.prompt_tokens);
  out.set_completion_tokens(u.completion_tokens);
  out.set_drafted_tokens(u.drafted);
  out.set_accepted_tokens(u.accepted);
  out.set_time_to_first_token_ms(u.ttft_ms);
  out.set_total_time_ms(u.total_ms);
  out.set_speculation(to_proto(u.mode));
}

void to_proto(const GenerationEvent& e, v1::GenerateResponse& out) {
  out.Clear();
  out.set_text(e.text);
  out.mutable_token_ids()->Add(e.ids.begin(), e.ids.end());
  out.mutable_logprobs()->Add(e.logprobs.begin(), e.logprobs.end());
  for (const auto& top : e.top_logprobs) {
    auto* t = out.add_top_logprobs();
    for (const auto& tl : top) {
      t->add_ids(tl.id);
      t->add_logprobs(tl.logprob);
    }
  }
  if (!e.final) return;
  auto* f = out.mutable_final();
  f->set_finish_reason(to_proto(e.reason));
  f->set_error(e.error);
  to_proto(e.usage, *f->mutable_usage());
}

void to_proto(const EngineInfo& i, v1::ServerInfo& out) {
  out.set_max_seqs(i.max_seqs);
  out.set_active(i.active);
  out.set_queued(i.queued);
  out.set_free_slots(std::max(0, i.max_seqs - i.active));
  out.set_ready(i.ready);
  out.set_draining(i.draining);
  auto* c = out.mutable_counters();
  c->set_admitted(i.admitted);
  c->set_completed(i.completed);
  c->set_cancelled(i.cancelled);
  c->set_failed(i.failed);
  c->set_tokens_generated(i.tokens_generated);
  c->set_drafted_tokens(i.drafted);
  c->set_accepted_tokens(i.accepted);
  c->set_draft_blocks(i.blocks);
  c->set_target_steps(i.target_steps);
  c->set_target_busy_s(i.target_busy_s);
  c->set_wait_for_draft_s(i.wait_for_draft_s);
  auto* s = out.mutable_speculation();
  s->set_auto_mode(to_proto(i.auto_mode));
  s->set_auto_reason(i.auto_reason);
}

void to_proto(const Layout& l, int n_layers, v1::Layout& out) {
  out.set_tp(l.tp);
  out.set_pp(l.pp);
  out.set_draft_tp(l.draft_tp);
  out.set_world_size(l.world_size());
  out.set_description(l.describe());
  if (auto stages = pipeline_stages(n_layers, l.pp, l.layer_split))
    for (auto [b, e] : *stages) out.add_layer_split(e - b);
  for (int r = 0; r < l.world_size(); ++r) {
    const Role role = role_of(l, r);
    auto* ri = out.add_ranks();
    ri->set_world_rank(r);
    ri->set_group(role.in_target ? "target" : "draft");
    ri->set_stage(role.stage);
    ri->set_tp_rank(role.tp_rank);
    ri->set_draft_rank(role.draft_rank);
    ri->set_coordinator(role.coordinator());
  }
}

void to_proto(const Cluster& c, const Tokenizer& tok, v1::ModelInfo& out) {
  const ModelFile& f = c.target_file;
  const ModelConfig& m = f.config;
  out.set_path(f.path);
  out.set_format(f.format);
  auto* cfg = out.mutable_config();
  cfg->set_architecture(m.arch);
  cfg->set_name(m.name);
  cfg->set_dim(m.dim);
  cfg->set_n_layers(m.n_layers);
  cfg->set_n_heads(m.n_heads);
  cfg->set_n_kv_heads(m.n_kv_heads);
  cfg->set_head_dim(m.head_dim);
  cfg->set_ffn_dim(m.ffn_dim);
  cfg->set_vocab_size(m.n_vocab);
  cfg->set_train_context(m.ctx_len);
  cfg->set_rope_theta(m.rope_theta);
  cfg->set_rms_norm_eps(m.rms_eps);
  out.set_vocab_size(tok.n_vocab());
  // "The" weight type: the one holding most bytes (norms are f32 even in quantized files).
  std::map<WeightType, uint64_t> bytes;
  for (const auto& t : f.tensors) bytes[t.type] += t.nbytes;
  WeightType top = WeightType::F32;
  uint64_t most = 0;
  for (auto [t, b] : bytes)
    if (b > most) most = b, top = t;
  out.set_weight_type(std::string(name(top)));
  out.set_weight_bytes(f.weight_bytes());
  out.set_context_size(c.ctx);
  out.set_bos_id(tok.bos());
  out.set_eos_id(tok.eos());
  out.set_tokenizer(tok.vocab().kind == TokenizerKind::Bpe ? "bpe" : "spm");
  auto* d = out.mutable_drafter();
  switch (c.draft_spec.kind) {
    case DraftSpec::Kind::None: d->set_kind("none"); break;
    case DraftSpec::Kind::Model: d->set_kind("model"); break;
    case DraftSpec::Kind::Ngram: d->set_kind("ngram"); break;
    case DraftSpec::Kind::Layers: d->set_kind("layers"); break;
  }
  d->set_path(c.draft_spec.path);
  d->set_layers(c.draft_spec.layers);
  d->set_draft_tp(c.opts.layout.draft_tp);
}

grpc::Status to_grpc_status(const Error& e) {
  switch (e.code) {
    case ErrorCode::InvalidArgument: return {grpc::StatusCode::INVALID_ARGUMENT, e.message};
    case ErrorCode::ResourceExhausted: return {grpc::StatusCode::RESOURCE_EXHAUSTED, e.message};
    case ErrorCode::Unavailable: return {grpc::StatusCode::UNAVAILABLE, e.message};
    case ErrorCode::Internal: break;
  }
  return {grpc::StatusCode::INTERNAL, e.message};
}

}  // namespace tandem::rpc
