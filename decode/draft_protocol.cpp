#include "decode/draft_protocol.h"

#include <cstring>

namespace tandem {
namespace {

struct Writer {
  std::vector<uint8_t> b;
  template <class T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  template <class T>
  void put_vec(const std::vector<T>& v) {
    put(static_cast<uint32_t>(v.size()));
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    b.insert(b.end(), p, p + v.size() * sizeof(T));
  }
};

struct Reader {
  const std::vector<uint8_t>& b;
  size_t pos = 0;
  bool ok = true;
  template <class T>
  void get(T& v) {
    if (pos + sizeof(T) > b.size()) {
      ok = false;
      return;
    }
    std::memcpy(&v, b.data() + pos, sizeof(T));
    pos += sizeof(T);
  }
  template <class T>
  void get_vec(std::vector<T>& v) {
    uint32_t n = 0;
    get(n);
    if (!ok || pos + static_cast<size_t>(n) * sizeof(T) > b.size()) {
      ok = false;
      return;
    }
    v.resize(n);
    std::memcpy(v.data(), b.data() + pos, n * sizeof(T));
    pos += n * sizeof(T);
  }
};

}  // namespace

std::vector<uint8_t> encode_request(const DraftRequest& r) {
  Writer w;
  w.put(r.slot);
  w.put(r.epoch);
  w.put(r.base_len);
  w.put(r.n_draft);
  w.put(static_cast<uint8_t>(r.release));
  w.put(r.params);  // trivially copyable
  w.put_vec(r.append);
  return std::move(w.b);
}

bool decode_request(const std::vector<uint8_t>& b, DraftRequest& r) {
  Reader rd{b};
  uint8_t rel = 0;
  rd.get(r.slot);
  rd.get(r.epoch);
  rd.get(r.base_len);
  rd.get(r.n_draft);
  rd.get(rel);
  rd.get(r.params);
  rd.get_vec(r.append);
  r.release = rel != 0;
  return rd.ok && rd.pos == b.size();
}

std::vector<uint8_t> encode_block(const DraftBlock& k) {
  Writer w;
  w.put(k.slot);
  w.put(k.epoch);
  w.put(k.start_pos);
  w.put(k.seconds_per_token);
  w.put(k.idle_seconds);
  w.put_vec(k.tokens);
  w.put(static_cast<uint32_t>(k.q.size()));
  for (const auto& q : k.q) {
    w.put_vec(q.ids);
    w.put_vec(q.probs);
  }
  return std::move(w.b);
}

bool decode_block(const std::vector<uint8_t>& b, DraftBlock& k) {
  Reader rd{b};
  rd.get(k.slot);
  rd.get(k.epoch);
  rd.get(k.start_pos);
  rd.get(k.seconds_per_token);
  rd.get(k.idle_seconds);
  rd.get_vec(k.tokens);
  uint32_t nq = 0;
  rd.get(nq);
  if (!rd.ok || nq > k.tokens.size()) return false;
  k.q.resize(nq);
  for (auto& q : k.q) {
    rd.get_vec(q.ids);
    rd.get_vec(q.probs);
  }
  return rd.ok && rd.pos == b.size();
}

}  // namespace tandem
