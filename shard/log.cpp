#include "shard/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <unistd.h>

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
  char host[256] = "?";
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '?', host[1] = '\0';
  host[sizeof host - 1] = '\0';  // host names are letters, digits, '-' and '.': nothing spdlog reads as a flag
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [rank " + who + " on " + host + "] [%^%l%$] %v");
  std::string lvl(level);
  if (lvl.empty()) {
    if (const char* env = std::getenv("TANDEM_LOG_LEVEL")) lvl = env;
  }
  if (!lvl.empty()) logger->set_level(spdlog::level::from_str(lvl));
  logger->flush_on(spdlog::level::warn);
}

int log_rank() { return g_rank; }

}  // namespace tandem
