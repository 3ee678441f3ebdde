#include "decode/stop_conditions.h"

#include <algorithm>
#include <utility>

namespace tandem {

namespace {

// Stop strings must be whole UTF-8 so that holding back a possible stop-string prefix never
// splits a character: a valid string starts with a lead byte, so every match (full or partial)
// of it inside valid text starts on a character boundary.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string take(std::string& s) { return std::exchange(s, std::string()); }

}  // namespace

std::string_view to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "none";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kEos: return "eos";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "unknown";
}

Status validate(const StopParams& params) {
  if (params.max_tokens < 0)
    return make_error("stop: max_tokens must be >= 0, 0 = no limit (got {})", params.max_tokens);
  for (size_t i = 0; i < params.stop.size(); ++i) {
    if (params.stop[i].empty()) return make_error("stop: stop string {} is empty", i);
    if (!valid_utf8(params.stop[i])) return make_error("stop: stop string {} is not valid UTF-8", i);
  }
  for (size_t i = 0; i < params.stop_token_ids.size(); ++i)
    if (params.stop_token_ids[i] < 0)
      return make_error("stop: stop_token_ids[{}] is negative ({})", i, params.stop_token_ids[i]);
  return ok_status();
}

StopState::StopState(StopParams params) : params_(std::move(params)) {}

StopUpdate StopState::push(int32_t id, bool is_eog, std::string_view piece) {
  if (finished()) return {"", reason_};
  ++n_tokens_;
  const auto& ids = params_.stop_token_ids;
  if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
    reason_ = FinishReason::kStop;
    return {take(held_), reason_};
  }
  if (is_eog && !params_.ignore_eos) {
    reason_ = FinishReason::kEos;
    return {take(held_), reason_};
  }

  held_.append(piece);
  // Emitted text never contains the start of a possible match (see below), so every match lies
  // inside held_; the earliest start wins.
  size_t match = std::string::npos;
  for (const std::string& s : params_.stop) match = std::min(match, held_.find(s));
  if (match != std::string::npos) {
    held_.resize(match);
    reason_ = FinishReason::kStop;
    return {take(held_), reason_};
  }
  if (params_.max_tokens > 0 && n_tokens_ >= params_.max_tokens) {
    reason_ = FinishReason::kLength;
    return {take(held_), reason_};
  }

  // Hold back the longest suffix of held_ that is a proper prefix of some stop string: it may
  // still grow into a match. Everything before it can never be part of one.
  size_t keep_from = held_.size();
  for (const std::string& s : params_.stop) {
    const size_t longest = std::min(held_.size(), s.size() - 1);
    for (size_t len = longest; len > 0; --len) {
      const size_t from = held_.size() - len;
      if (from >= keep_from) break;  // not longer than what is held back already
      if (std::string_view(held_).substr(from) == std::string_view(s).substr(0, len)) {
        keep_from = from;
        break;
      }
    }
  }
  StopUpdate out{held_.substr(0, keep_from), FinishReason::kNone};
  held_.erase(0, keep_from);
  return out;
}

std::string StopState::finish() { return take(held_); }

}  // namespace tandem
