// shard_file_ranges: the bytes a rank's shard reads, which is all a host without the model file is
// sent. Checked by loading each shard from a copy of the file in which every other byte is zeroed:
// the packed weights, norms, biases and embedding rows must be byte-identical to the original's.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "synth_fixture.h"

using namespace tandem;

namespace {

// The file with every byte outside `keep` (and outside the header) zeroed.
std::string zeroed_copy(const ModelFile& f, const std::vector<ByteRange>& keep, const std::string& tag) {
  std::vector<char> bytes(f.map->size, 0);
  const uint64_t header = f.gguf->data_offset;
  std::memcpy(bytes.data(), f.map->data, header);
  for (const auto& r : keep) {
    EXPECT_LE(r.offset + r.length, f.map->size);
    std::memcpy(bytes.data() + r.offset, f.map->data + r.offset, r.length);
  }
  const std::string path = std::string(TANDEM_TEST_WORK) + "/ranges-" + tag + ".gguf";
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

void expect_same(const PackedMatrix& a, const PackedMatrix& b, const std::string& what) {
  ASSERT_EQ(a.bytes, b.bytes) << what;
  ASSERT_EQ(a.rows, b.rows) << what;
  if (a.bytes) EXPECT_EQ(std::memcmp(a.data.get(), b.data.get(), a.bytes), 0) << what;
}

}  // namespace

TEST(ShardFileRanges, AShardLoadedFromOnlyItsRangesEqualsTheFullLoad) {
  for (WeightType t : {WeightType::F32, WeightType::Q4_0, WeightType::Q8_0}) {
    auto path = test::synth_model(test::small_synth(t, 256, 4, 8, 4, 512, 7, "qwen2"));
    ASSERT_TRUE(path.ok()) << path.error().message;
    auto f = open_model(*path);
    ASSERT_TRUE(f.ok()) << f.error().message;
    for (int tp : {1, 2, 4})
      for (int stage = 0; stage < 2; ++stage)
        for (int rank = 0; rank < tp; ++rank) {
          ShardSpec s;
          s.tp_rank = rank;
          s.tp_size = tp;
          s.layer_begin = stage * 2;
          s.layer_end = stage * 2 + 2;
          s.has_embedding = stage == 0;
          s.has_head = stage == 1;
          const std::string tag = fmt::format("{}-tp{}-r{}-s{}", name(t), tp, rank, stage);
          auto ranges = shard_file_ranges(*f, s);
          ASSERT_TRUE(ranges.ok()) << ranges.error().message;
          uint64_t covered = 0;
          for (size_t i = 0; i < ranges->size(); ++i) {
            covered += (*ranges)[i].length;
            if (i) EXPECT_GT((*ranges)[i].offset, (*ranges)[i - 1].offset + (*ranges)[i - 1].length) << "not merged";
          }
          auto full = load_shard(*f, s);
          ASSERT_TRUE(full.ok()) << full.error().message;
          // What the load counts, plus the embedding a first stage reads at run time, and nothing else.
          const uint64_t embd = s.has_embedding ? f->require("token_embd.weight").value()->nbytes : 0;
          EXPECT_LE(covered, full->bytes_loaded + embd) << tag;
          EXPECT_GE(covered, full->bytes_loaded) << tag;
          auto g = open_model(zeroed_copy(*f, *ranges, tag));
          ASSERT_TRUE(g.ok()) << g.error().message;
          auto part = load_shard(*g, s);
          ASSERT_TRUE(part.ok()) << part.error().message;
          ASSERT_EQ(part->layers.size(), full->layers.size());
          for (size_t l = 0; l < full->layers.size(); ++l) {
            const auto &a = full->layers[l], &b = part->layers[l];
            expect_same(a.wq, b.wq, tag + " wq");
            expect_same(a.wk, b.wk, tag + " wk");
            expect_same(a.wv, b.wv, tag + " wv");
            expect_same(a.wo, b.wo, tag + " wo");
            expect_same(a.w_gate, b.w_gate, tag + " gate");
            expect_same(a.w_up, b.w_up, tag + " up");
            expect_same(a.w_down, b.w_down, tag + " down");
            EXPECT_EQ(a.attn_norm, b.attn_norm) << tag;
            EXPECT_EQ(a.ffn_norm, b.ffn_norm) << tag;
            EXPECT_EQ(a.bq, b.bq) << tag;
            EXPECT_EQ(a.bk, b.bk) << tag;
            EXPECT_EQ(a.bv, b.bv) << tag;
          }
          if (s.has_head) {
            expect_same(full->output, part->output, tag + " head");
            EXPECT_EQ(full->output_norm, part->output_norm) << tag;
          }
          if (s.has_embedding) {  // every row a lookup may read
            ASSERT_EQ(part->token_embd.nbytes, full->token_embd.nbytes);
            EXPECT_EQ(std::memcmp(part->token_embd.data, full->token_embd.data, full->token_embd.nbytes), 0) << tag;
          }
          std::remove(std::string(std::string(TANDEM_TEST_WORK) + "/ranges-" + tag + ".gguf").c_str());
        }
  }
}
