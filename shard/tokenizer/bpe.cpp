// Byte-level BPE (GPT-2 and its descendants) as llama.cpp's llm_tokenizer_bpe does it: split the
// text with the vocabulary's pre-tokenizer regex, spell each piece's bytes in GPT-2's printable
// byte alphabet, then apply merges lowest rank first.
#include <algorithm>
#include <array>

#include "shard/log.h"
#include "shard/tokenizer/pre_tokenizer.h"
#include "shard/tokenizer/tokenizer_internal.h"
#include "shard/tokenizer/utf8.h"

namespace tandem {
namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes are
// renumbered from U+0100 on, so every byte has a visible, non-space character.
struct ByteAlphabet {
  std::array<std::string, 256> utf8;     // byte -> its character, UTF-8 encoded
  std::array<int16_t, 256 + 68> byte{};  // code point -> byte, -1 if not in the alphabet

  ByteAlphabet() {
    byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
      append_utf8(utf8[b], cp);
      byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;  // immutable after its thread-safe initialisation
  return a;
}

struct Symbol {
  int prev, next;
  size_t offset, n;  // bytes of the byte-level word; n == 0 once merged into the left neighbour
};

struct Bigram {
  int left, right;
  int32_t rank;
  size_t left_n, right_n;  // sizes when queued: a changed size means the pair is stale
};

struct BigramOrder {
  // Lowest rank first; among equal ranks the leftmost pair.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

Status bpe_init(TokenizerImpl& t) {
  if (t.vocab.pre.empty())
    spdlog::warn("tokenizer: BPE vocabulary without tokenizer.ggml.pre: using llama.cpp's default pre-tokenizer");
  auto pre = find_pre_tokenizer(t.vocab.pre);
  if (!pre) return make_error("tokenizer: {}", pre.error().message);
  std::vector<std::string> patterns((*pre)->regexes.begin(), (*pre)->regexes.end());
  auto splitter = RegexSplitter::compile(patterns);
  if (!splitter) return splitter.error();
  t.pretokenizer = std::make_shared<const RegexSplitter>(std::move(*splitter));
  t.ignore_merges = (*pre)->ignore_merges;

  t.merge_rank.reserve(t.vocab.merges.size());
  for (size_t i = 0; i < t.vocab.merges.size(); ++i) {
    const std::string& m = t.vocab.merges[i];
    // The separator is the first space after the first byte (a merge's left side may be " ").
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos || sp + 1 >= m.size())
      return make_error("tokenizer: BPE merge {} ('{}') is not of the form 'left right'", i, m);
    t.merge_rank.emplace(m, static_cast<int32_t>(i));  // the first occurrence keeps its rank
  }
  return ok_status();
}

std::string bpe_token_bytes(std::string_view text) {
  const ByteAlphabet& a = byte_alphabet();
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const int n = utf8_sequence_at(text, i);
    if (n <= 0) {  // not UTF-8: not from the byte alphabet, pass it through
      out += text[i++];
      continue;
    }
    uint32_t cp = static_cast<uint8_t>(text[i]);
    if (n > 1) {
      cp &= 0x7F >> n;
      for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(text[i + k]) & 0x3F);
    }
    if (cp < a.byte.size() && a.byte[cp] >= 0)
      out += static_cast<char>(a.byte[cp]);
    else
      out.append(text.substr(i, n));  // a character outside the alphabet stands for itself
    i += n;
  }
  return out;
}

void bpe_encode(const TokenizerImpl& t, std::string_view text, std::vector<int32_t>& out) {
  const ByteAlphabet& a = byte_alphabet();
  std::string word, key;
  std::vector<Symbol> sym;
  std::vector<Bigram> heap;  // reused across words; a priority queue through push_heap/pop_heap
  for (std::string_view piece : t.pretokenizer->split(text)) {
    word.clear();
    for (char c : piece) word += a.utf8[static_cast<uint8_t>(c)];
    if (t.ignore_merges) {
      if (const int32_t id = t.find(word); id >= 0) {
        out.push_back(id);
        continue;
      }
    }

    sym.clear();
    for (size_t off = 0; off < word.size();) {
      const size_t n = std::min(utf8_lead_len(static_cast<uint8_t>(word[off])), word.size() - off);
      const int i = static_cast<int>(sym.size());
      sym.push_back({i - 1, off + n == word.size() ? -1 : i + 1, off, n});
      off += n;
    }
    heap.clear();
    auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      key.assign(word, sym[left].offset, sym[left].n);
      key += ' ';
      key.append(word, sym[right].offset, sym[right].n);
      auto it = t.merge_rank.find(key);
      if (it == t.merge_rank.end()) return;
      heap.push_back({left, right, it->second, sym[left].n, sym[right].n});
      std::push_heap(heap.begin(), heap.end(), BigramOrder{});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), BigramOrder{});
      const Bigram b = heap.back();
      heap.pop_back();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.n != b.left_n || r.n != b.right_n || l.n == 0 || r.n == 0) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }

    for (int i = 0; i != -1; i = sym[i].next) {
      const std::string_view s(word.data() + sym[i].offset, sym[i].n);
      if (const int32_t id = t.find(s); id >= 0) {
        out.push_back(id);
        continue;
      }
      // A merge whose result is not a token (a malformed vocabulary): fall back to its characters.
      for (size_t off = 0; off < s.size();) {
        const size_t n = std::min(utf8_lead_len(static_cast<uint8_t>(s[off])), s.size() - off);
        const int32_t id = t.find(s.substr(off, n));
        if (id >= 0)
          out.push_back(id);
        else if (t.vocab.unk >= 0)
          out.push_back(t.vocab.unk);
        off += n;
      }
    }
  }
}

}  // namespace tandem
