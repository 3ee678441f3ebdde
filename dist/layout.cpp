#include "dist/layout.h"

#include <fmt/format.h>

#include <charconv>

namespace tandem {

std::string Layout::describe() const {
  std::string s = fmt::format("tp{}×pp{}", tp, pp);
  if (draft_tp > 0) s += fmt::format("+draft{}", draft_tp);
  return s;
}

Result<std::vector<int>> parse_layer_split(const std::string& s) {
  std::vector<int> out;
  if (s.empty()) return out;
  size_t i = 0;
  while (i <= s.size()) {
    const size_t j = std::min(s.find(',', i), s.size());
    int v = 0;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + j, v);
    if (ec != std::errc() || p != s.data() + j || v <= 0)
      return make_error("--layer-split '{}': expected comma-separated positive layer counts", s);
    out.push_back(v);
    i = j + 1;
  }
  return out;
}

Status check_world_size(const Layout& l, int world_size) {
  if (l.tp < 1 || l.pp < 1 || l.draft_tp < 0) return make_error("invalid layout {}: sizes must be positive", l.describe());
  if (world_size != l.world_size())
    return make_error("the layout {} needs {} ranks (tp {} × pp {} target{}), but the job has {}; run with "
                      "`mpirun -n {}` or change --tp/--pp/--draft-tp",
                      l.describe(), l.world_size(), l.tp, l.pp,
                      l.draft_tp ? fmt::format(" + {} draft", l.draft_tp) : std::string(), world_size, l.world_size());
  return ok_status();
}

Role role_of(const Layout& l, int world_rank) {
  Role r;
  r.world_rank = world_rank;
  if (world_rank < l.target_ranks()) {
    r.in_target = true;
    r.stage = world_rank / l.tp;
    r.tp_rank = world_rank % l.tp;
  } else {
    r.in_draft = true;
    r.draft_rank = world_rank - l.target_ranks();
  }
  return r;
}

int target_world_rank(const Layout& l, int stage, int tp_rank) { return stage * l.tp + tp_rank; }

}  // namespace tandem
