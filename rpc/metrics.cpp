#include "rpc/metrics.h"

#include <cmath>
#include <sstream>

namespace tandem::rpc {
namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

struct Writer {
  std::string out;
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, double v, std::initializer_list<std::pair<std::string_view, std::string>> labels = {}) {
    out += name;
    if (labels.size()) {
      out += '{';
      bool first = true;
      for (const auto& [k, val] : labels) {
        out += fmt::format("{}{}=\"{}\"", first ? "" : ",", k, escape(val));
        first = false;
      }
      out += '}';
    }
    out += ' ';
    out += number(v);
    out += '\n';
  }
  void histogram(std::string_view name, std::string_view help, const Histogram& h) {
    family(name, "histogram", help);
    int64_t cum = 0;
    const std::string bucket = std::string(name) + "_bucket";
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      cum += h.counts[i];
      sample(bucket, static_cast<double>(cum), {{"le", number(h.bounds[i])}});
    }
    sample(bucket, static_cast<double>(h.count), {{"le", "+Inf"}});
    sample(std::string(name) + "_sum", h.sum);
    sample(std::string(name) + "_count", static_cast<double>(h.count));
  }
};

}  // namespace

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::Stop: return "stop";
    case Outcome::Length: return "length";
    case Outcome::Cancelled: return "cancelled";
    case Outcome::Error: return "error";
    case Outcome::Invalid: return "invalid";
    case Outcome::Unauthenticated: return "unauthenticated";
    case Outcome::QueueFull: return "queue_full";
    case Outcome::Unavailable: return "unavailable";
    case Outcome::NotFound: return "not_found";
  }
  return "error";
}

Outcome outcome_of(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return Outcome::Length;
    case FinishReason::kCancelled: return Outcome::Cancelled;
    case FinishReason::kError:
    case FinishReason::kNone: return Outcome::Error;
    default: return Outcome::Stop;
  }
}

Metrics::Metrics() : ttft_(latency_buckets()), tpot_(latency_buckets()), e2e_(latency_buckets()) {}

void Metrics::record(const RequestRecord& r) {
  std::lock_guard lk(mu_);
  ++requests_[{r.api, outcome_name(r.outcome)}];
  if (r.outcome != Outcome::Stop && r.outcome != Outcome::Length) return;
  if (r.ttft_s >= 0) ttft_.observe(r.ttft_s);
  if (r.ttft_s >= 0 && r.usage.completion_tokens > 1)
    tpot_.observe((r.total_s - r.ttft_s) / (r.usage.completion_tokens - 1));
  e2e_.observe(r.total_s);
  if (r.usage.mode != SpecMode::Off) {
    drafted_[spec_mode_name(r.usage.mode)] += r.usage.drafted;
    accepted_[spec_mode_name(r.usage.mode)] += r.usage.accepted;
  }
}

void Metrics::stream_opened(std::string_view api) {
  std::lock_guard lk(mu_);
  ++open_streams_[std::string(api)];
}

void Metrics::stream_closed(std::string_view api) {
  std::lock_guard lk(mu_);
  --open_streams_[std::string(api)];
}

std::string Metrics::render(const EngineInfo* e, bool serving) const {
  std::lock_guard lk(mu_);
  Writer w;
  w.family("tandem_ready", "gauge", "1 when every rank is loaded and warmed up and the server accepts requests");
  w.sample("tandem_ready", serving ? 1 : 0);
  w.family("tandem_requests_total", "counter", "Requests by API and how they ended (rejections included)");
  for (const auto& [k, n] : requests_) w.sample("tandem_requests_total", static_cast<double>(n), {{"api", k.first}, {"outcome", k.second}});
  w.family("tandem_open_streams", "gauge", "Generation calls currently open, by API");
  for (const auto& [api, n] : open_streams_) w.sample("tandem_open_streams", static_cast<double>(n), {{"api", api}});
  w.histogram("tandem_time_to_first_token_seconds", "From a request's arrival to its first token (completed requests)", ttft_);
  w.histogram("tandem_time_per_output_token_seconds", "Mean time per output token after the first (completed requests)", tpot_);
  w.histogram("tandem_request_duration_seconds", "From a request's arrival to its last token (completed requests)", e2e_);
  w.family("tandem_speculation_drafted_tokens_total", "counter", "Draft tokens checked by the target model, by decoding mode");
  for (const auto& [m, n] : drafted_) w.sample("tandem_speculation_drafted_tokens_total", static_cast<double>(n), {{"mode", m}});
  w.family("tandem_speculation_accepted_tokens_total", "counter", "Of the drafted tokens, those the target accepted, by mode");
  for (const auto& [m, n] : accepted_) w.sample("tandem_speculation_accepted_tokens_total", static_cast<double>(n), {{"mode", m}});
  w.family("tandem_speculation_acceptance_ratio", "gauge", "accepted / drafted tokens so far, by mode");
  for (const auto& [m, n] : drafted_)
    if (n > 0) w.sample("tandem_speculation_acceptance_ratio", static_cast<double>(accepted_.at(m)) / n, {{"mode", m}});
  const EngineInfo none;
  const EngineInfo& i = e ? *e : none;
  w.family("tandem_queue_depth", "gauge", "Requests waiting for a slot");
  w.sample("tandem_queue_depth", i.queued);
  w.family("tandem_active_sequences", "gauge", "Sequences holding a KV slot");
  w.sample("tandem_active_sequences", i.active);
  w.family("tandem_kv_slots", "gauge", "KV-cache slots (one per concurrent sequence), by state");
  w.sample("tandem_kv_slots", i.active, {{"state", "used"}});
  w.sample("tandem_kv_slots", std::max(0, i.max_seqs - i.active), {{"state", "free"}});
  w.family("tandem_prompt_tokens_total", "counter", "Prompt tokens of admitted requests");
  w.sample("tandem_prompt_tokens_total", static_cast<double>(i.prompt_tokens));
  w.family("tandem_generation_tokens_total", "counter", "Tokens generated (committed)");
  w.sample("tandem_generation_tokens_total", static_cast<double>(i.tokens_generated));
  w.family("tandem_engine_requests_total", "counter", "Requests the engine admitted and ended, by outcome");
  w.sample("tandem_engine_requests_total", static_cast<double>(i.completed), {{"outcome", "completed"}});
  w.sample("tandem_engine_requests_total", static_cast<double>(i.cancelled), {{"outcome", "cancelled"}});
  w.sample("tandem_engine_requests_total", static_cast<double>(i.failed), {{"outcome", "failed"}});
  w.family("tandem_draft_length", "gauge", "Draft tokens asked for by the latest draft request (adaptive unless fixed)");
  w.sample("tandem_draft_length", i.draft_len);
  w.family("tandem_draft_blocks_total", "counter", "Draft blocks the drafter delivered");
  w.sample("tandem_draft_blocks_total", static_cast<double>(i.blocks));
  w.histogram("tandem_target_step_seconds",
              "Wall time of one target-model step (every rank of the target group, as rank 0 waits for it)",
              i.step_seconds);
  w.family("tandem_target_busy_seconds_total", "counter", "Time inside target steps");
  w.sample("tandem_target_busy_seconds_total", i.target_busy_s);
  w.family("tandem_target_wait_for_draft_seconds_total", "counter", "Target side idle, waiting for a draft block");
  w.sample("tandem_target_wait_for_draft_seconds_total", i.wait_for_draft_s);
  if (!i.stages.empty()) {
    // Per target member (refreshed every few seconds): busy computing vs idle waiting for work.
    auto each = [&](const char* name, const char* type, const char* help, auto value) {
      w.family(name, type, help);
      for (size_t r = 0; r < i.stages.size(); ++r)
        w.sample(name, value(i.stages[r]),
                 {{"rank", std::to_string(r)}, {"stage", std::to_string(i.stages[r].stage)}, {"tp_rank", std::to_string(i.stages[r].tp_rank)}});
    };
    each("tandem_stage_busy_seconds_total", "counter", "Target member's time computing its stage (collectives included)",
         [](const GroupStats& g) { return g.compute_seconds; });
    each("tandem_stage_wait_seconds_total", "counter",
         "Target member's time idle, waiting for work (workers: the next step; rank 0: results of the last stage)",
         [](const GroupStats& g) { return g.wait_in_seconds; });
    each("tandem_stage_steps_total", "counter", "Forward steps the target member ran", [](const GroupStats& g) { return static_cast<double>(g.steps); });
  }
  return std::move(w.out);
}

Result<std::vector<Sample>> parse_exposition(std::string_view text) {
  std::vector<Sample> out;
  std::istringstream in{std::string(text)};
  int lineno = 0;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream l(line);
      std::string hash, kind, name, rest;
      l >> hash >> kind >> name;
      if (kind == "TYPE") {
        l >> rest;
        static const char* kTypes[] = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (std::find(std::begin(kTypes), std::end(kTypes), rest) == std::end(kTypes))
          return make_error("line {}: unknown metric type '{}'", lineno, rest);
      } else if (kind == "HELP" && name.empty()) {
        return make_error("line {}: HELP without a metric name", lineno);
      }
      continue;
    }
    Sample s;
    size_t i = 0;
    auto name_char = [](char c, bool first) {
      return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' || (!first && std::isdigit(static_cast<unsigned char>(c)));
    };
    while (i < line.size() && name_char(line[i], i == 0)) s.name += line[i++];
    if (s.name.empty()) return make_error("line {}: expected a metric name", lineno);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::string key, val;
        while (i < line.size() && line[i] != '=') key += line[i++];
        if (i + 1 >= line.size() || line[i + 1] != '"') return make_error("line {}: label {} has no quoted value", lineno, key);
        i += 2;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            val += line[i] == 'n' ? '\n' : line[i];
          } else {
            val += line[i];
          }
          ++i;
        }
        if (i >= line.size()) return make_error("line {}: unterminated label value", lineno);
        ++i;  // closing quote
        s.labels[key] = val;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return make_error("line {}: unterminated label set", lineno);
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') return make_error("line {}: expected a space before the value", lineno);
    const std::string v = line.substr(i + 1);
    if (v == "+Inf") s.value = INFINITY;
    else if (v == "-Inf") s.value = -INFINITY;
    else if (v == "NaN") s.value = NAN;
    else {
      try {
        size_t used = 0;
        s.value = std::stod(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
      } catch (...) {
        return make_error("line {}: '{}' is not a number", lineno, v);
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace tandem::rpc
