// Golden greedy generation on the real stories260K model, in both file formats.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "shard/llama_forward.h"
#include "shard/model_file.h"

using namespace tandem;

namespace {

std::vector<int32_t> read_ids(const std::string& path) {
  std::ifstream f(path);
  std::vector<int32_t> v;
  int32_t x;
  while (f >> x) v.push_back(x);
  return v;
}

// Plain greedy decoding through forward_stage: BOS, then argmax one token at a time.
std::vector<int32_t> greedy(const ModelFile& f, int n, int threads) {
  auto m = load_shard(f, ShardSpec{});
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  KvCacheConfig kc{m->ranges.n_layers(), m->ranges.n_kv_heads(), f.config.head_dim, 1, 256, WeightType::F16};
  auto kv = make_kv_cache(kc);
  EXPECT_TRUE(kv.ok());
  ThreadPool pool(threads);
  LocalCollectives coll;
  ForwardScratch s;
  std::vector<float> hidden, logits;
  std::vector<int32_t> out;
  int32_t tok = 1;  // BOS
  for (int pos = 0; pos < n; ++pos) {
    SeqChunk c{0, pos, std::span<const int32_t>(&tok, 1), false};
    auto st = forward_stage(*m, *kv, std::span<const SeqChunk>(&c, 1), coll, pool, s, hidden, &logits);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    int best = 0;
    for (int j = 1; j < static_cast<int>(logits.size()); ++j)
      if (logits[j] > logits[best]) best = j;
    tok = best;
    out.push_back(tok);
  }
  return out;
}

}  // namespace

TEST(ForwardGolden, Stories260KGgufReproducesGreedyIds) {
  const std::string dir = std::string(TANDEM_TESTDATA) + "/models/";
  auto f = open_model(dir + "stories260K.gguf");
  ASSERT_TRUE(f.ok()) << f.error().message;
  const auto want = read_ids(dir + "stories260K.greedy.ids");
  ASSERT_EQ(want.size(), 200u);
  EXPECT_EQ(greedy(*f, 200, 1), want);
}

TEST(ForwardGolden, Stories260KLlama2cReproducesGreedyIds) {
  const std::string dir = std::string(TANDEM_TESTDATA) + "/models/";
  auto f = open_model(dir + "stories260K.bin", dir + "tok512.bin");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(greedy(*f, 200, 2), read_ids(dir + "stories260K.greedy.ids"));
}
