#include "dist/step.h"

namespace tandem {

std::vector<int32_t> encode_step(const Step& s) {
  std::vector<int32_t> b;
  b.reserve(6 + s.chunks.size() * 4 + static_cast<size_t>(step_rows(s)));
  b.push_back(static_cast<int32_t>(s.op));
  b.push_back(static_cast<int32_t>(s.logits));
  b.push_back(static_cast<int32_t>(s.id & 0x7fffffff));
  b.push_back(static_cast<int32_t>(s.id >> 31));
  b.push_back(static_cast<int32_t>(s.chunks.size()));
  for (const auto& c : s.chunks) {
    b.push_back(c.slot);
    b.push_back(c.pos0);
    b.push_back(c.all_logits ? 1 : 0);
    b.push_back(static_cast<int32_t>(c.tokens.size()));
    b.insert(b.end(), c.tokens.begin(), c.tokens.end());
  }
  return b;
}

Result<Step> decode_step(std::span<const int32_t> b) {
  Step s;
  if (b.size() < 5) return make_error("step descriptor too short ({} ints)", b.size());
  s.op = static_cast<StepOp>(b[0]);
  s.logits = static_cast<LogitsMode>(b[1]);
  s.id = static_cast<int64_t>(b[2]) | (static_cast<int64_t>(b[3]) << 31);
  const int32_t n = b[4];
  size_t i = 5;
  if (n < 0 || static_cast<size_t>(n) > b.size()) return make_error("step descriptor: bad chunk count {}", n);
  s.chunks.resize(n);
  for (auto& c : s.chunks) {
    if (i + 4 > b.size()) return make_error("step descriptor truncated");
    c.slot = b[i];
    c.pos0 = b[i + 1];
    c.all_logits = b[i + 2] != 0;
    const int32_t nt = b[i + 3];
    i += 4;
    if (nt < 0 || i + nt > b.size()) return make_error("step descriptor: bad token count {}", nt);
    c.tokens.assign(b.begin() + i, b.begin() + i + nt);
    i += nt;
  }
  return s;
}

std::vector<SeqChunk> seq_chunks(const Step& s) {
  std::vector<SeqChunk> v;
  v.reserve(s.chunks.size());
  for (const auto& c : s.chunks) v.push_back(SeqChunk{c.slot, c.pos0, c.tokens, c.all_logits});
  return v;
}

int step_rows(const Step& s) {
  int n = 0;
  for (const auto& c : s.chunks) n += static_cast<int>(c.tokens.size());
  return n;
}

int step_out_rows(const Step& s) {
  int n = 0;
  for (const auto& c : s.chunks) n += c.tokens.empty() ? 0 : (c.all_logits ? static_cast<int>(c.tokens.size()) : 1);
  return n;
}

}  // namespace tandem
