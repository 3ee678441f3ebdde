#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "shard/format/llama2c_checkpoint.h"

using namespace tandem;

namespace {

const std::string kStoriesBin = std::string(TANDEM_TESTDATA) + "/models/stories260K.bin";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string write_bytes(const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = std::string(TANDEM_TEST_WORK) + "/llama2c_" + name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

void set_header(std::vector<uint8_t>& b, int field, int32_t v) { std::memcpy(b.data() + 4 * field, &v, 4); }

Result<Llama2cCheckpoint> read(const std::string& path, std::shared_ptr<const MappedFile>& keep) {
  auto m = map_file(path);
  if (!m) return m.error();
  keep = *m;
  return read_llama2c(*keep);
}

const TensorRef* find(const Llama2cCheckpoint& ck, const std::string& name) {
  for (const auto& t : ck.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

// stories260K: 64/172/5/8/4/512/512, head size 8 => freq_cis tables of 512 * 4 floats each.
constexpr size_t kFreqBytes = 2 * 512 * 4 * 4;

}  // namespace

TEST(Llama2c, ReadsStories260KLegacyCheckpoint) {
  std::shared_ptr<const MappedFile> map;
  auto ck = read(kStoriesBin, map);
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  const ModelConfig& c = ck->config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.ctx_len, 512);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_EQ(c.name, "stories260K");
  EXPECT_TRUE(ck->has_freq_cis);
  EXPECT_TRUE(ck->shared_classifier);
  EXPECT_TRUE(c.tied_output);
  ASSERT_EQ(ck->tensors.size(), 3u + 9u * 5u);

  // Karpathy's order: token_embd first, then all attn_norms, then all wq, ...
  const uint8_t* base = map->data + 28;
  const auto* emb = find(*ck, "token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->data, base);
  EXPECT_EQ(emb->ne, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(find(*ck, "blk.0.attn_norm.weight")->data, base + 512 * 64 * 4);
  EXPECT_EQ(find(*ck, "blk.1.attn_norm.weight")->data, base + (512 * 64 + 64) * 4);
  EXPECT_EQ(find(*ck, "blk.0.attn_q.weight")->data, base + (512 * 64 + 5 * 64) * 4);
  EXPECT_EQ(find(*ck, "blk.0.attn_k.weight")->ne, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(find(*ck, "blk.0.ffn_gate.weight")->ne, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(find(*ck, "blk.0.ffn_down.weight")->ne, (std::vector<int64_t>{172, 64}));
  EXPECT_EQ(find(*ck, "blk.0.ffn_norm.weight")->ne, (std::vector<int64_t>{64}));
  // rms_final sits right before the freq_cis tables at the end of the file.
  const auto* fin = find(*ck, "output_norm.weight");
  EXPECT_EQ(fin->data + fin->nbytes, map->data + map->size - kFreqBytes);
  const auto* head = find(*ck, "output.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->data, emb->data);  // shared classifier
  EXPECT_EQ(ck->tensors[0].name, "token_embd.weight");
  EXPECT_EQ(ck->tensors[3].name, "blk.0.attn_q.weight");  // llama.cpp's listing order
}

TEST(Llama2c, ReadsSecondModel) {
  std::shared_ptr<const MappedFile> map;
  auto ck = read(std::string(TANDEM_TESTDATA) + "/models/llama2xs-tinystories-280K.bin", map);
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  EXPECT_EQ(ck->config.ffn_dim, 192);
  EXPECT_EQ(ck->config.ctx_len, 256);
  EXPECT_TRUE(ck->has_freq_cis);
}

TEST(Llama2c, AcceptsFilesWithoutFreqCisTables) {
  auto bytes = read_bytes(kStoriesBin);
  bytes.resize(bytes.size() - kFreqBytes);
  const std::string path = write_bytes("nofreq.bin", bytes);
  std::shared_ptr<const MappedFile> a, b;
  auto with = read(kStoriesBin, a);
  auto without = read(path, b);
  ASSERT_TRUE(without.ok()) << without.error().message;
  EXPECT_FALSE(without->has_freq_cis);
  ASSERT_EQ(with->tensors.size(), without->tensors.size());
  for (size_t i = 0; i < with->tensors.size(); ++i) {
    ASSERT_EQ(with->tensors[i].nbytes, without->tensors[i].nbytes);
    EXPECT_EQ(std::memcmp(with->tensors[i].data, without->tensors[i].data, with->tensors[i].nbytes), 0);
  }
}

TEST(Llama2c, UntiedClassifierFollowsTheTables) {
  for (bool freq : {true, false}) {
    auto bytes = read_bytes(kStoriesBin);
    if (!freq) bytes.resize(bytes.size() - kFreqBytes);
    set_header(bytes, 5, -512);  // negative vocab: wcls present
    const size_t wcls_at = bytes.size();
    for (int i = 0; i < 512 * 64; ++i) {
      const float x = static_cast<float>(i % 97) * 0.25f;
      const auto* p = reinterpret_cast<const uint8_t*>(&x);
      bytes.insert(bytes.end(), p, p + 4);
    }
    const std::string path = write_bytes(freq ? "untied.bin" : "untied_nofreq.bin", bytes);
    std::shared_ptr<const MappedFile> map;
    auto ck = read(path, map);
    ASSERT_TRUE(ck.ok()) << ck.error().message;
    EXPECT_FALSE(ck->shared_classifier);
    EXPECT_FALSE(ck->config.tied_output);
    EXPECT_EQ(ck->config.n_vocab, 512);
    EXPECT_EQ(ck->has_freq_cis, freq);
    const auto* head = find(*ck, "output.weight");
    ASSERT_NE(head, nullptr);
    EXPECT_EQ(head->data, map->data + wcls_at);
    EXPECT_EQ(head->ne, (std::vector<int64_t>{64, 512}));
    float x = 0;
    std::memcpy(&x, head->data + 4 * 100, 4);
    EXPECT_EQ(x, 3 * 0.25f);  // element 100 = (100 % 97) * 0.25
  }
}

TEST(Llama2c, MalformedCheckpointsGiveClearErrors) {
  const auto good = read_bytes(kStoriesBin);
  struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
    const char* fragment;
  };
  auto with_header = [&](int field, int32_t v) {
    auto b = good;
    set_header(b, field, v);
    return b;
  };
  auto truncated = good;
  truncated.resize(truncated.size() - 4);
  auto trailing = good;
  trailing.push_back(0);
  const Case cases[] = {
      {"short.bin", std::vector<uint8_t>(good.begin(), good.begin() + 10), "the header alone needs 28"},
      {"empty.bin", {}, "the header alone needs 28"},
      {"truncated.bin", truncated, "llama2.c checkpoint is truncated"},
      {"trailing.bin", trailing, "trailing bytes"},
      {"ak42.bin", with_header(0, 0x616b3432), "\"ak42\" header) is not supported"},
      {"zero_heads.bin", with_header(3, 0), "non-positive sizes"},
      {"neg_dim.bin", with_header(0, -64), "non-positive sizes"},
      {"int_min_vocab.bin", with_header(5, INT32_MIN), "non-positive sizes"},
      {"odd_heads.bin", with_header(3, 7), "dim 64 is not divisible by n_heads 7"},
      {"kv_heads.bin", with_header(4, 3), "not a multiple of the KV head count 3"},
      {"kv_gt_heads.bin", with_header(4, 16), "KV head count = 16 is out of range"},
      {"huge_dim.bin", with_header(0, 1 << 30), "embedding length = 1073741824 is out of range"},
      {"huge_layers.bin", with_header(2, 1 << 30), "block count = 1073741824 is out of range"},
      {"huge_vocab.bin", with_header(5, INT32_MAX), "vocabulary size = 2147483647 is out of range"},
      {"bigger_ffn.bin", with_header(1, 173), "truncated"},
      {"smaller_ffn.bin", with_header(1, 171), "has trailing bytes"},
      {"wrong_seq.bin", with_header(6, 1000), "does not match its header"},
  };
  for (const auto& c : cases) {
    const std::string path = write_bytes(c.name, c.bytes);
    std::shared_ptr<const MappedFile> map;
    auto ck = read(path, map);
    ASSERT_FALSE(ck.ok()) << c.name;
    EXPECT_NE(ck.error().message.find(c.fragment), std::string::npos) << c.name << ": " << ck.error().message;
    EXPECT_NE(ck.error().message.find(path), std::string::npos) << c.name << ": " << ck.error().message;
  }
}
