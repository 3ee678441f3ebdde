// Mutation fuzzing of the model loaders: thousands of corrupted GGUF files, llama2.c checkpoints
// and tokenizer.bin files must each load or fail with an Error naming the file — never crash,
// trip a sanitizer (CI runs this binary under ASan + UBSan) or allocate absurd amounts of memory.
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/resource.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "shard/format/gguf_reader.h"
#include "shard/format/gguf_writer.h"
#include "shard/format/llama2c_checkpoint.h"
#include "shard/format/model_file.h"
#include "shard/format/synth.h"
#include "shard/tokenizer/tokenizer.h"

using namespace tandem;

namespace {

const std::string kModels = std::string(TANDEM_TESTDATA) + "/models";
const std::string kStoriesGguf = kModels + "/stories260K.gguf";
const std::string kStoriesBin = kModels + "/stories260K.bin";
const std::string kTok512 = kModels + "/tok512.bin";

std::string work(const std::string& name) {
  const std::string dir = std::string(TANDEM_TEST_WORK) + "/fuzz";
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

using Bytes = std::vector<uint8_t>;

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const Bytes& b) {
  // A fresh file rather than a truncated one: ext4 flushes a file rewritten in place on close
  // (auto_da_alloc), which would make thousands of rewrites wait on the disk.
  std::filesystem::remove(path);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A field of the file worth corrupting on purpose: counts, lengths, types, dimensions, offsets.
struct Field {
  size_t off, size;
};

// Where things are in a seed file, found by walking it independently of the code under test.
struct Layout {
  std::vector<Field> fields;
  std::vector<size_t> boundaries;  // section starts: header, each key/value, tensor info, tensor data
  size_t hot_end = 0;              // end of the structured part (header / metadata / tokenizer records)
};

Layout gguf_layout(const Bytes& b) {
  Layout l;
  size_t p = 0;
  auto u32 = [&] { uint32_t x; std::memcpy(&x, b.data() + p, 4); return x; };
  auto u64 = [&] { uint64_t x; std::memcpy(&x, b.data() + p, 8); return x; };
  auto field = [&](size_t n) { l.fields.push_back({p, n}); p += n; };
  auto str = [&](bool record_len) {
    const uint64_t n = u64();
    if (record_len) l.fields.push_back({p, 8});
    p += 8 + n;
  };
  auto scalar = [](uint32_t t) -> size_t {
    switch (t) {
      case 0: case 1: case 7: return 1;
      case 2: case 3: return 2;
      case 4: case 5: case 6: return 4;
      default: return 8;
    }
  };
  l.boundaries.push_back(0);
  p = 8;  // magic, version
  l.fields.push_back({4, 4});
  const uint64_t n_tensors = u64();
  field(8);
  const uint64_t n_kv = u64();
  field(8);
  for (uint64_t i = 0; i < n_kv; ++i) {
    l.boundaries.push_back(p);
    str(true);
    const uint32_t type = u32();
    field(4);
    if (type == 8) {
      str(true);
    } else if (type == 9) {
      const uint32_t et = u32();
      field(4);
      const uint64_t n = u64();
      field(8);
      for (uint64_t k = 0; k < n; ++k) {
        if (et == 8) str(k < 4 || k + 1 == n);  // a few string lengths per array are enough
        else p += scalar(et);
      }
    } else {
      p += scalar(type);
    }
  }
  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    l.boundaries.push_back(p);
    str(true);
    const uint32_t nd = u32();
    field(4);
    for (uint32_t d = 0; d < nd; ++d) field(8);
    field(4);  // type
    offsets.push_back(u64());
    field(8);
  }
  l.hot_end = p;
  const size_t data = (p + 31) / 32 * 32;
  for (uint64_t o : offsets) l.boundaries.push_back(data + o);
  l.boundaries.push_back(b.size());
  return l;
}

Layout llama2c_layout(const Bytes& b, const std::string& path) {
  Layout l;
  for (size_t i = 0; i < 7; ++i) l.fields.push_back({4 * i, 4});
  l.hot_end = 28;
  auto map = map_file(path);
  auto ck = read_llama2c(**map);
  EXPECT_TRUE(ck.ok());
  for (const auto& t : ck->tensors) l.boundaries.push_back(static_cast<size_t>(t.data - (*map)->data));
  l.boundaries.push_back(0);
  l.boundaries.push_back(b.size());
  return l;
}

Layout tokenizer_layout(const Bytes& b) {
  Layout l;
  l.fields.push_back({0, 4});
  size_t p = 4;
  while (p + 8 <= b.size()) {
    l.boundaries.push_back(p);
    l.fields.push_back({p + 4, 4});  // length (the score is a float: any value is valid)
    int32_t len;
    std::memcpy(&len, b.data() + p + 4, 4);
    p += 8 + static_cast<size_t>(len);
  }
  l.hot_end = b.size();
  l.boundaries.push_back(b.size());
  return l;
}

constexpr uint64_t kExtremes[] = {0,
                                  1,
                                  2,
                                  0xFF,
                                  0xFFFF,
                                  uint64_t{1} << 20,  // at the readers' count limits
                                  (uint64_t{1} << 20) - 1,
                                  uint64_t{1} << 24,
                                  0x7FFF'FFFF,
                                  0x8000'0000,
                                  0xFFFF'FFFF,
                                  uint64_t{1} << 32,
                                  uint64_t{1} << 40,
                                  uint64_t{1} << 62,
                                  0x7FFF'FFFF'FFFF'FFFF,
                                  0x8000'0000'0000'0000,
                                  0xFFFF'FFFF'FFFF'FFFF,
                                  0xFFFF'FFFF'FFFF'FFFE};

// One to three corruptions of `seed`: bit flips (mostly in the structured part), extreme values
// written over counts/lengths/types/offsets, byte runs, truncations at section boundaries or
// anywhere.
Bytes mutate(const Bytes& seed, const Layout& l, std::mt19937_64& rng) {
  Bytes b = seed;
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const int n_ops = 1 + static_cast<int>(rng() % 3);
  for (int op = 0; op < n_ops && !b.empty(); ++op) {
    const size_t hot = std::min(l.hot_end, b.size());
    switch (rng() % 8) {
      case 0:
      case 1: {  // bit flips
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < flips; ++i) {
          const size_t at = (rng() % 8 != 0 && hot > 0) ? pick(hot) : pick(b.size());
          b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        }
        break;
      }
      case 2:
      case 3:
      case 4: {  // extreme value over a field
        const Field& f = l.fields[pick(l.fields.size())];
        if (f.off + f.size > b.size()) break;
        uint64_t v = kExtremes[pick(std::size(kExtremes))];
        if (rng() % 4 == 0) v = b.size() - f.off + (rng() % 3) - 1;  // "just past the end"
        std::memcpy(b.data() + f.off, &v, f.size);  // little-endian: the low bytes for 4-byte fields
        break;
      }
      case 5: {  // a run of bytes over the structured part
        const size_t at = hot > 0 ? pick(hot) : pick(b.size());
        const size_t n = std::min<size_t>(1 + pick(16), b.size() - at);
        const int kind = static_cast<int>(rng() % 3);
        for (size_t i = 0; i < n; ++i) b[at + i] = kind == 0 ? 0 : kind == 1 ? 0xFF : static_cast<uint8_t>(rng());
        break;
      }
      case 6: {  // truncate at a section boundary, give or take a few bytes
        const size_t at = l.boundaries[pick(l.boundaries.size())];
        const size_t delta = pick(5);
        b.resize(std::min(b.size(), at + delta >= 2 ? at + delta - 2 : 0));
        break;
      }
      default:  // truncate anywhere
        b.resize(pick(b.size() + 1));
        break;
    }
  }
  return b;
}

// The contract under fuzzing: success with a self-consistent model, or an Error naming a file.
struct Outcome {
  int ok = 0, failed = 0;
};

void check_open(const std::string& model, const std::string& tokenizer, Outcome& out, const std::string& what) {
  auto m = open_model(model, tokenizer);
  if (!m.ok()) {
    ++out.failed;
    const std::string& msg = m.error().message;
    ASSERT_FALSE(msg.empty()) << what;
    const bool names_file =
        msg.find(model) != std::string::npos || (!tokenizer.empty() && msg.find(tokenizer) != std::string::npos);
    ASSERT_TRUE(names_file) << what << ": " << msg;
    return;
  }
  ++out.ok;
  ASSERT_TRUE(validate_config(m->config, model).ok()) << what;
  const uint8_t* begin = m->map->data;
  const uint8_t* end = begin + m->map->size;
  for (const auto& t : m->tensors) {
    ASSERT_TRUE(t.data >= begin && t.nbytes <= static_cast<uint64_t>(end - t.data)) << what << " " << t.name;
    ASSERT_EQ(t.nbytes, t.row_bytes() * static_cast<uint64_t>(t.rows())) << what << " " << t.name;
  }
  ASSERT_EQ(m->vocab.tokens.size(), static_cast<size_t>(m->config.n_vocab)) << what;
  // Whatever vocabulary survived must give a working tokenizer, or a clean refusal.
  auto tok = Tokenizer::create(m->vocab);
  if (tok.ok()) {
    const auto ids = tok->encode("Once upon a time, \xc3\xa9t\xc3\xa9 42!");
    for (int32_t id : ids) ASSERT_TRUE(tok->valid(id)) << what;
    (void)tok->decode(ids);
  } else {
    ASSERT_FALSE(tok.error().message.empty()) << what;
  }
}

struct Seed {
  std::string name;
  std::string path;       // the file that gets mutated
  std::string tokenizer;  // passed to open_model (llama2.c)
  bool mutate_tokenizer = false;
};

// Small synthetic models in a few weight types, written with the synth API.
std::vector<Seed> make_seeds() {
  std::vector<Seed> seeds;
  for (WeightType t : {WeightType::F32, WeightType::Q8_0, WeightType::Q4_K, WeightType::Q5_K}) {
    SynthOptions o;
    // Per process: ctest runs the fuzz tests in parallel and each writes its own seeds.
    o.out = work(std::string("seed_") + std::string(name(t)) + "_" + std::to_string(getpid()) + ".gguf");
    o.vocab_from = kStoriesGguf;
    o.type = t;
    const bool k_quant = info(t).block_elems == 256;
    o.dim = k_quant ? 256 : 64;
    o.n_layers = 1;
    o.n_heads = 4;
    o.n_kv_heads = 2;
    o.ffn_dim = k_quant ? 256 : 96;
    o.ctx_len = 64;
    o.threads = 1;
    auto st = write_synth_model(o);
    EXPECT_TRUE(st.ok()) << st.error().message;
    seeds.push_back({std::string("synth-") + std::string(name(t)), o.out, "", false});
  }
  seeds.push_back({"stories260K.gguf", kStoriesGguf, "", false});
  seeds.push_back({"stories260K.bin", kStoriesBin, kTok512, false});
  seeds.push_back({"tok512.bin", kTok512, "", true});
  return seeds;
}

long max_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

}  // namespace

TEST(FuzzModelFiles, SeedsLoad) {
  for (const auto& s : make_seeds()) {
    Outcome o;
    check_open(s.mutate_tokenizer ? kStoriesBin : s.path, s.mutate_tokenizer ? s.path : s.tokenizer, o, s.name);
    EXPECT_EQ(o.ok, 1) << s.name;
  }
}

TEST(FuzzModelFiles, TruncationAtEverySectionBoundary) {
  for (const auto& s : make_seeds()) {
    const Bytes seed = read_bytes(s.path);
    const Layout l = s.mutate_tokenizer ? tokenizer_layout(seed)
                     : seed[0] == 'G'   ? gguf_layout(seed)
                                        : llama2c_layout(seed, s.path);
    const std::string mutated = work("trunc_" + s.name);
    Outcome out;
    for (size_t at : l.boundaries) {
      for (size_t cut : {at, at + 1, at > 0 ? at - 1 : 0}) {
        if (cut >= seed.size()) continue;  // the whole file is the seed itself
        write_bytes(mutated, Bytes(seed.begin(), seed.begin() + cut));
        const std::string what = s.name + " truncated to " + std::to_string(cut);
        if (s.mutate_tokenizer) check_open(kStoriesBin, mutated, out, what);
        else check_open(mutated, s.tokenizer, out, what);
        if (HasFatalFailure()) return;
      }
    }
    // A model truncated anywhere is unusable; a tokenizer cut at a token boundary is merely
    // shorter — and then no longer matches the model.
    EXPECT_EQ(out.ok, 0) << s.name;
    EXPECT_GT(out.failed, 0) << s.name;
  }
}

TEST(FuzzModelFiles, RandomMutations) {
  constexpr int kMutations = 5000;
  const auto seeds = make_seeds();
  std::vector<Bytes> bytes;
  std::vector<Layout> layouts;
  for (const auto& s : seeds) {
    bytes.push_back(read_bytes(s.path));
    const Bytes& b = bytes.back();
    layouts.push_back(s.mutate_tokenizer ? tokenizer_layout(b) : b[0] == 'G' ? gguf_layout(b) : llama2c_layout(b, s.path));
  }
  std::mt19937_64 rng(0x7a6e'de11);
  std::vector<Outcome> outcomes(seeds.size());
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kMutations; ++i) {
    const size_t k = static_cast<size_t>(i) % seeds.size();
    const Seed& s = seeds[k];
    const std::string mutated = work("mut_" + s.name);
    write_bytes(mutated, mutate(bytes[k], layouts[k], rng));
    const std::string what = s.name + " mutation #" + std::to_string(i);
    if (s.mutate_tokenizer) check_open(kStoriesBin, mutated, outcomes[k], what);
    else check_open(mutated, s.tokenizer, outcomes[k], what);
    if (HasFatalFailure()) return;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t k = 0; k < seeds.size(); ++k) {
    // Both outcomes must occur: a fuzzer whose mutations never (or always) break the file is not
    // exercising the error paths (or the success path).
    EXPECT_GT(outcomes[k].failed, 0) << seeds[k].name;
    EXPECT_GT(outcomes[k].ok, 0) << seeds[k].name;
    std::printf("  %-18s %4d loaded, %4d rejected\n", seeds[k].name.c_str(), outcomes[k].ok, outcomes[k].failed);
  }
  std::printf("  %d mutations in %.1f s, peak RSS %ld MB\n", kMutations, secs, max_rss_mb());
  // Counts are bounded before anything is allocated for them: no mutation may drive memory up.
  EXPECT_LT(max_rss_mb(), 1024);
}

// Specific malformations and the message each must produce.
TEST(FuzzModelFiles, MalformationTable) {
  const Bytes gguf = read_bytes(kStoriesGguf);
  const Layout gl = gguf_layout(gguf);
  auto tensor_info = [&](const std::string& tname) -> size_t {  // offset of the name's length field
    for (const Field& f : gl.fields) {
      if (f.size != 8 || f.off + 8 + tname.size() > gguf.size()) continue;
      uint64_t n;
      std::memcpy(&n, gguf.data() + f.off, 8);
      if (n == tname.size() && std::memcmp(gguf.data() + f.off + 8, tname.data(), n) == 0)
        return f.off;
    }
    ADD_FAILURE() << "no tensor info for " << tname;
    return 0;
  };
  auto patch = [](Bytes b, size_t off, const void* v, size_t n) {
    std::memcpy(b.data() + off, v, n);
    return b;
  };
  const uint32_t v1 = 1, v4 = 4, type99 = 99;
  const uint64_t dim16 = 16, mega = uint64_t{1} << 20, huge = uint64_t{1} << 40, all_ones = ~uint64_t{0};
  // The first key/value is tokenizer.ggml.tokens: fields 3..6 are its key length, value type,
  // element type and element count.
  const size_t tokens_count = gl.fields[6].off;
  const size_t attn_k = tensor_info("blk.0.attn_k.weight");
  // name length, name, n_dims, ne[0], ne[1], type, offset
  const size_t attn_k_ne1 = attn_k + 8 + 19 + 4 + 8;
  const size_t attn_k_type = attn_k_ne1 + 8;
  const size_t ffn_up = tensor_info("blk.3.ffn_up.weight");
  Bytes renamed = gguf;
  renamed[ffn_up + 8 + 18] = 'X';  // "blk.3.ffn_up.weighX"

  // A 500-token tokenizer: tok512.bin cut after its 500th record.
  const Bytes tok = read_bytes(kTok512);
  const Layout tl = tokenizer_layout(tok);
  const std::string tok500 = work("tok500.bin");
  write_bytes(tok500, Bytes(tok.begin(), tok.begin() + tl.boundaries[500]));

  struct Case {
    std::string name;
    Bytes bytes;
    std::string tokenizer;
    std::string fragment;
  };
  const Case cases[] = {
      {"bad_magic.gguf", patch(gguf, 0, "GGUX", 4), "", "not a GGUF file"},
      {"version1.gguf", patch(gguf, 4, &v1, 4), "", "unsupported GGUF version 1"},
      {"version4.gguf", patch(gguf, 4, &v4, 4), "", "unsupported GGUF version 4"},
      {"truncated_header.gguf", Bytes(gguf.begin(), gguf.begin() + 20), "", "truncated"},
      {"unknown_type.gguf", patch(gguf, attn_k_type, &type99, 4), "", "unsupported weight type 99"},
      {"past_eof.gguf", Bytes(gguf.begin(), gguf.end() - 100), "", "extends past the end of the file"},
      {"dim_mismatch.gguf", patch(gguf, attn_k_ne1, &dim16, 8), "",
       "tensor 'blk.0.attn_k.weight' has shape [64, 16], the model config implies [64, 32]"},
      {"missing_tensor.gguf", renamed, "", "missing tensor 'blk.3.ffn_up.weight'"},
      {"vocab_mismatch.bin", read_bytes(kStoriesBin), tok500, "vocabulary size mismatch"},
      {"truncated.bin", Bytes(gguf.begin(), gguf.begin() + 0), "", "the header alone needs 28"},
      {"tensor_count.gguf", patch(gguf, 8, &mega, 8), "", "tensor count 1048576 is implausible"},
      {"kv_count.gguf", patch(gguf, 16, &all_ones, 8), "", "metadata count 18446744073709551615 is implausible"},
      {"array_count.gguf", patch(gguf, tokens_count, &huge, 8), "", "runs past the end of the file"},
      {"key_length.gguf", patch(gguf, 24, &huge, 8), "", "truncated: metadata key needs 1099511627776 bytes"},
  };
  for (const auto& c : cases) {
    const std::string path = work("table_" + c.name);
    write_bytes(path, c.bytes);
    auto m = open_model(path, c.tokenizer);
    ASSERT_FALSE(m.ok()) << c.name;
    EXPECT_NE(m.error().message.find(c.fragment), std::string::npos) << c.name << ": " << m.error().message;
    EXPECT_NE(m.error().message.find(path), std::string::npos) << c.name << ": " << m.error().message;
  }
}
