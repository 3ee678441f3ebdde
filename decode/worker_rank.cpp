#include "decode/worker_rank.h"

#include "decode/draft_channel.h"
#include "shard/log.h"

namespace tandem {

void run_worker_rank(Cluster& c) {
  if (c.role.in_target) {
    c.target->serve();
  } else if (c.role.draft_master()) {
    run_draft_master(*c.draft, c.comms.heads);
  } else if (c.draft) {
    c.draft->serve();
  }
  spdlog::debug("rank done");
}

}  // namespace tandem
