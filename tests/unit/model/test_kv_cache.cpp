// KV cache allocation (sizes, element types, impossible sizes) and the batch checks that keep a
// bad step descriptor from corrupting it.
#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "tests/unit/model/synth_fixture.h"

using namespace tandem;
using namespace tandem::test;

TEST(KvCache, SizesAndHeadLayout) {
  for (WeightType t : {WeightType::F16, WeightType::F32}) {
    SCOPED_TRACE(name(t));
    const KvCacheConfig c{3, 2, 32, 4, 100, t};
    const size_t eb = t == WeightType::F32 ? 4 : 2;
    EXPECT_EQ(kv_cache_bytes(c), 2ull * 3 * 4 * 2 * 100 * 32 * eb);  // K and V × layers × slots × heads × ctx × dim
    auto kv = make_kv_cache(c);
    ASSERT_TRUE(kv.ok()) << kv.error().message;
    EXPECT_EQ(kv->bytes, kv_cache_bytes(c));
    EXPECT_EQ(kv->elem_bytes, eb);
    EXPECT_EQ(kv->row_stride(), 32 * eb);
    EXPECT_EQ(kv->head_stride(), 100 * 32 * eb);
    EXPECT_EQ(kv->length, std::vector<int>(4, 0));
    // Every (K/V, layer, slot, head) history is its own non-overlapping range inside the buffer.
    std::set<const uint8_t*> starts;
    for (int which = 0; which < 2; ++which)
      for (int l = 0; l < 3; ++l)
        for (int s = 0; s < 4; ++s)
          for (int h = 0; h < 2; ++h) {
            const uint8_t* p = kv->head(which, l, s, h);
            ASSERT_GE(p, kv->data.get());
            ASSERT_LE(p + kv->head_stride(), kv->data.get() + kv->bytes);
            EXPECT_EQ((p - kv->data.get()) % kv->head_stride(), 0);
            starts.insert(p);
          }
    EXPECT_EQ(starts.size(), 2u * 3 * 4 * 2);
    // The whole buffer is writable (first and last byte).
    kv->data.get()[0] = 1;
    kv->data.get()[kv->bytes - 1] = 1;
  }
  // F32 holds twice the bytes of F16 for the same shape.
  EXPECT_EQ(kv_cache_bytes({2, 1, 64, 1, 10, WeightType::F32}), 2 * kv_cache_bytes({2, 1, 64, 1, 10, WeightType::F16}));
}

TEST(KvCache, StageWithoutLayersNeedsNoMemory) {
  auto kv = make_kv_cache({0, 2, 32, 4, 100, WeightType::F16});
  ASSERT_TRUE(kv.ok()) << kv.error().message;
  EXPECT_EQ(kv->bytes, 0u);
  EXPECT_EQ(kv->length.size(), 4u);
}

TEST(KvCache, BadConfigurationsAreClearErrors) {
  auto q = make_kv_cache({1, 1, 32, 1, 16, WeightType::Q8_0});
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.error().message.find("f16 or f32"), std::string::npos) << q.error().message;
  auto no_slots = make_kv_cache({1, 1, 32, 0, 16, WeightType::F16});
  ASSERT_FALSE(no_slots.ok());
  EXPECT_NE(no_slots.error().message.find("slot"), std::string::npos) << no_slots.error().message;
  EXPECT_FALSE(make_kv_cache({1, 1, 32, 1, 0, WeightType::F16}).ok());
  // 2 × 32 layers × 64 slots × 8 heads × 2^30 positions × 128 × 2 bytes: far beyond any machine.
  auto huge = make_kv_cache({32, 8, 128, 64, 1 << 30, WeightType::F16});
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message.find("GiB"), std::string::npos) << huge.error().message;
  EXPECT_NE(huge.error().message.find("--ctx-size"), std::string::npos) << huge.error().message;
  // 2 × 32 × 2^17 slots × 8 × 2^30 × 128 × 2 bytes = 2^64: a product that wraps to 0 (or to any
  // small number) must still be refused, not handed out as an empty cache.
  const KvCacheConfig wraps{32, 8, 128, 1 << 17, 1 << 30, WeightType::F16};
  EXPECT_EQ(kv_cache_bytes(wraps), UINT64_MAX);
  auto wrapped = make_kv_cache(wraps);
  ASSERT_FALSE(wrapped.ok()) << "a 2^64-byte cache was accepted with " << wrapped->bytes << " bytes";
  EXPECT_NE(wrapped.error().message.find("exceeds"), std::string::npos) << wrapped.error().message;
  auto negative = make_kv_cache({-1, 8, 128, 1, 16, WeightType::F16});
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.error().message.find("-1"), std::string::npos) << negative.error().message;
}

// F16 and F32 caches give nearly the same logits (F16 rounds K/V to 11 significant bits), and
// not identical ones: the element type really is used.
TEST(KvCache, F16AndF32CachesAgreeClosely) {
  auto path = synth_model(small_synth(WeightType::F32, 256, 3, 8, 2, 512));
  ASSERT_TRUE(path.ok()) << path.error().message;
  auto f = open_model(*path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  const auto prompt = test_tokens(16, 3, f->config.n_vocab);
  std::vector<std::vector<float>> out;
  for (WeightType t : {WeightType::F16, WeightType::F32}) {
    auto e = make_engine(*f, 1, 32, 1, t);
    ASSERT_TRUE(e.ok()) << e.error().message;
    ASSERT_TRUE((*e)->run(SeqChunk{0, 0, prompt, false}).ok());
    out.emplace_back((*e)->row(0).begin(), (*e)->row(0).end());
  }
  double worst = 0, mean = 0, sq = 0;
  for (float v : out[1]) mean += v / out[1].size();
  for (float v : out[1]) sq += (v - mean) * (v - mean) / out[1].size();
  for (size_t i = 0; i < out[0].size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(out[0][i] - out[1][i])));
  EXPECT_NE(out[0], out[1]);
  EXPECT_LT(worst / std::sqrt(sq), 5e-3);
  EXPECT_EQ(argmax(out[0]), argmax(out[1]));
}

namespace {

struct CheckFixture {
  ModelFile file;
  std::unique_ptr<Engine> e;
};

CheckFixture check_fixture() {
  CheckFixture c;
  auto path = synth_model(small_synth(WeightType::F32, 256, 3, 8, 2, 512));
  EXPECT_TRUE(path.ok());
  auto f = open_model(*path);
  EXPECT_TRUE(f.ok());
  c.file = std::move(*f);
  auto e = make_engine(c.file, 3, 16, 1);
  EXPECT_TRUE(e.ok());
  c.e = std::move(*e);
  return c;
}

std::string rejected(Engine& e, std::vector<SeqChunk> batch) {
  auto st = check_batch(e.model, e.kv, batch);
  if (st.ok()) return "";
  // forward_stage refuses the same batch and leaves the cache lengths alone.
  const auto before = e.kv.length;
  EXPECT_FALSE(e.run(batch).ok());
  EXPECT_EQ(e.kv.length, before);
  return st.error().message;
}

}  // namespace

TEST(KvCache, CheckBatchRejectsWhatWouldCorruptTheCache) {
  auto c = check_fixture();
  ASSERT_TRUE(c.e);
  Engine& e = *c.e;
  const std::vector<int32_t> four = {5, 6, 7, 8}, one = {9};
  ASSERT_TRUE(e.run(SeqChunk{1, 0, four, false}).ok());  // slot 1 holds 4 positions
  ASSERT_EQ(e.kv.length, (std::vector<int>{0, 4, 0}));

  // Accepted: appending at the length, rewriting below it, several slots at once.
  EXPECT_TRUE(check_batch(e.model, e.kv, std::vector<SeqChunk>{{1, 4, one, false}}).ok());
  EXPECT_TRUE(check_batch(e.model, e.kv, std::vector<SeqChunk>{{1, 2, four, true}, {0, 0, one, false}}).ok());
  EXPECT_TRUE(check_batch(e.model, e.kv, std::vector<SeqChunk>{{2, 0, std::vector<int32_t>(16, 3), false}}).ok());

  auto has = [](const std::string& msg, const char* what) {
    EXPECT_NE(msg.find(what), std::string::npos) << "'" << msg << "' should mention '" << what << "'";
  };
  has(rejected(e, {{3, 0, one, false}}), "slot 3 is out of range");
  has(rejected(e, {{-1, 0, one, false}}), "slot -1 is out of range");
  has(rejected(e, {{1, 5, one, false}}), "starts at position 5");  // a gap: positions 4 would be missing
  has(rejected(e, {{0, 1, one, false}}), "the cache holds 0");
  has(rejected(e, {{1, -1, one, false}}), "position -1");
  has(rejected(e, {{2, 0, std::vector<int32_t>(17, 3), false}}), "exceed the context size 16");
  has(rejected(e, {{1, 4, std::vector<int32_t>(13, 3), false}}), "exceed the context size 16");
  has(rejected(e, {{0, 0, std::vector<int32_t>{5, 512}, false}}), "token id 512");
  has(rejected(e, {{0, 0, std::vector<int32_t>{-3}, false}}), "token id -3");
  has(rejected(e, {{0, 0, one, false}, {2, 0, one, false}, {0, 0, one, false}}), "slot 0 appears twice");
  has(rejected(e, {{0, 0, std::span<const int32_t>(), false}}), "empty chunk");
  // One bad chunk rejects the whole batch: the good chunk before it did not run either.
  has(rejected(e, {{0, 0, one, false}, {1, 9, one, false}}), "slot 1");
  EXPECT_EQ(e.kv.length, (std::vector<int>{0, 4, 0}));
}

// A stage without the embedding takes hidden states, not ids: any id passes check_batch there,
// but the hidden input must have the batch's shape.
TEST(KvCache, StageWithoutEmbeddingChecksHiddenShapeNotIds) {
  auto path = synth_model(small_synth(WeightType::F32, 256, 3, 8, 2, 512));
  ASSERT_TRUE(path.ok()) << path.error().message;
  auto f = open_model(*path);
  ASSERT_TRUE(f.ok());
  ShardSpec spec;
  spec.layer_begin = 1;
  spec.has_embedding = false;
  auto e = make_engine(*f, 1, 16, 1, WeightType::F16, spec);
  ASSERT_TRUE(e.ok()) << e.error().message;
  const std::vector<int32_t> ids = {100000, -5};
  EXPECT_TRUE(check_batch((*e)->model, (*e)->kv, std::vector<SeqChunk>{{0, 0, ids, false}}).ok());
  (*e)->hidden.assign(3 * 256, 0.5f);  // three rows for a two-row batch
  auto st = (*e)->run(SeqChunk{0, 0, ids, false});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("expected 2 rows"), std::string::npos) << st.error().message;
  (*e)->hidden.assign(2 * 256, 0.5f);
  EXPECT_TRUE((*e)->run(SeqChunk{0, 0, ids, false}).ok());
  EXPECT_EQ((*e)->kv.length[0], 2);
}
