#include "shard/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace tandem {
namespace {
int g_rank = -1;
}

void init_logging(int rank, std::string_view level) {
  g_rank = rank;
  auto logger = spdlog::get("tandem");
  if (!logger) {
    logger = spdlog::stderr_color_mt("tandem");
    spdlog::set_default_logger(logger);
  }
  const std::string who = rank < 0 ? std::string("-") : std::to_string(rank);
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [rank " + who + "] [%^%l%$] %v");
  std::string lvl(level);
  if (lvl.empty()) {
    if (const char* env = std::getenv("TANDEM_LOG_LEVEL")) lvl = env;
  }
  if (!lvl.empty()) logger->set_level(spdlog::level::from_str(lvl));
  logger->flush_on(spdlog::level::warn);
}

int log_rank() { return g_rank; }

}  // namespace tandem
