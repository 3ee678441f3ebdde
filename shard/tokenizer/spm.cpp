// SentencePiece-style tokenization as llama.cpp's llm_tokenizer_spm does it: spaces escaped to
// "▁", start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
// best-scoring token, then spell whatever is not a token as byte tokens.
#include <queue>

#include "shard/tokenizer/tokenizer_internal.h"
#include "shard/tokenizer/utf8.h"

namespace tandem {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

struct Symbol {
  int prev, next;
  size_t offset, n;  // bytes of the escaped text; n == 0 once merged into the left neighbour
};

struct Bigram {
  int left, right;
  float score;
  size_t size;
};

struct BigramOrder {
  // Highest score first; among equal scores the leftmost pair.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void spm_encode(const TokenizerImpl& t, std::string_view raw, bool space_prefix, std::vector<int32_t>& out) {
  std::string text;
  text.reserve(raw.size() + raw.size() / 4 + 3);
  if (space_prefix) text += kSpace;
  for (char c : raw) {
    if (c == ' ')
      text += kSpace;
    else
      text += c;
  }
  if (text.empty()) return;

  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    // One symbol per character. llama.cpp trusts the lead byte's length even in ill-formed UTF-8,
    // which lets a stray byte swallow the "▁" after it (so the space decodes as raw "▁" bytes);
    // an ill-formed byte is a symbol of its own here. Well-formed text splits identically.
    const int len = utf8_sequence_at(text, off);
    const size_t n = len > 0 ? static_cast<size_t>(len) : 1;
    const int i = static_cast<int>(sym.size());
    sym.push_back({i - 1, off + n == text.size() ? -1 : i + 1, off, n});
    off += n;
  }

  std::vector<Bigram> storage;
  storage.reserve(sym.size());
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue(BigramOrder{}, std::move(storage));
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view pair(text.data() + sym[left].offset, sym[left].n + sym[right].n);
    const int32_t id = t.find(pair);
    if (id < 0) return;
    queue.push({left, right, t.vocab.scores[id], pair.size()});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    // Stale: one side has been merged away or has grown since this pair was queued.
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int i = 0; i != -1; i = sym[i].next) {
    const std::string_view piece(text.data() + sym[i].offset, sym[i].n);
    const int32_t id = t.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Byte fallback. A vocabulary without byte tokens loses the byte to <unk>, as SentencePiece does.
    for (char c : piece) {
      const int32_t b = t.byte_token[static_cast<uint8_t>(c)];
      if (b >= 0)
        out.push_back(b);
      else if (t.vocab.unk >= 0)
        out.push_back(t.vocab.unk);
    }
  }
}

}  // namespace tandem
