#include "decode/request.h"

namespace tandem {

const char* spec_mode_name(SpecMode m) {
  switch (m) {
    case SpecMode::Auto: return "auto";
    case SpecMode::Off: return "off";
    case SpecMode::Sd: return "sd";
    case SpecMode::Pearl: return "pearl";
  }
  return "?";
}

std::optional<SpecMode> parse_spec_mode(const std::string& s) {
  if (s == "auto") return SpecMode::Auto;
  if (s == "off" || s == "ar") return SpecMode::Off;
  if (s == "sd") return SpecMode::Sd;
  if (s == "pearl") return SpecMode::Pearl;
  return std::nullopt;
}

std::optional<GenerationEvent> RequestStream::next(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty(); })) return std::nullopt;
  GenerationEvent e = std::move(q_.front());
  q_.pop_front();
  return e;
}

void RequestStream::push(GenerationEvent e) {
  {
    std::lock_guard lk(mu_);
    q_.push_back(std::move(e));
  }
  cv_.notify_one();
}

}  // namespace tandem
