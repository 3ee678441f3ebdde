#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "shard/format/gguf_reader.h"
#include "shard/format/gguf_writer.h"

using namespace tandem;

namespace {

std::string work(const std::string& name) { return std::string(TANDEM_TEST_WORK) + "/gguf_writer_" + name; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Deterministic, distinct bytes per tensor so a misplaced tensor shows up.
TensorToWrite pattern_tensor(const std::string& name, WeightType t, std::vector<int64_t> ne, uint8_t salt) {
  TensorToWrite w{name, t, ne, {}};
  int64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
  const size_t n = row_bytes(t, ne[0]) * rows;
  w.fill = [n, salt](uint8_t* dst) {
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(i * 131 + salt);
  };
  return w;
}

std::vector<uint8_t> pattern_bytes(const TensorToWrite& t) {
  int64_t rows = 1;
  for (size_t i = 1; i < t.ne.size(); ++i) rows *= t.ne[i];
  std::vector<uint8_t> b(row_bytes(t.type, t.ne[0]) * rows);
  t.fill(b.data());
  return b;
}

// Structural equality including the on-disk type of every value and array element.
void expect_same_value(const GgufValue& a, const GgufValue& b, const std::string& key) {
  ASSERT_EQ(a.type, b.type) << key;
  if (a.as_array()) {
    ASSERT_NE(b.as_array(), nullptr) << key;
    ASSERT_EQ(a.as_array()->elem, b.as_array()->elem) << key;
    ASSERT_EQ(a.as_array()->items.size(), b.as_array()->items.size()) << key;
    for (size_t i = 0; i < a.as_array()->items.size(); ++i)
      expect_same_value(a.as_array()->items[i], b.as_array()->items[i], key + "[" + std::to_string(i) + "]");
    return;
  }
  ASSERT_EQ(a.v.index(), b.v.index()) << key;
  if (const auto* s = a.as_string()) {
    EXPECT_EQ(*s, *b.as_string()) << key;
  }
  if (const auto* u = std::get_if<uint64_t>(&a.v)) {
    EXPECT_EQ(*u, std::get<uint64_t>(b.v)) << key;
  }
  if (const auto* i = std::get_if<int64_t>(&a.v)) {
    EXPECT_EQ(*i, std::get<int64_t>(b.v)) << key;
  }
  if (const auto* d = std::get_if<double>(&a.v)) {
    EXPECT_EQ(*d, std::get<double>(b.v)) << key;  // exact
  }
  if (const auto* x = std::get_if<bool>(&a.v)) {
    EXPECT_EQ(*x, std::get<bool>(b.v)) << key;
  }
}

GgufValue typed(GgufType t, std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v) {
  return GgufValue{t, std::move(v)};
}

}  // namespace

TEST(GgufWriter, RoundTripsEveryMetadataTypeAndTensorBytes) {
  GgufArray nested{GgufType::ARRAY, {gguf_i32_array({1, -2}), gguf_i32_array({})}};
  const std::vector<std::pair<std::string, GgufValue>> md = {
      {"general.architecture", gguf_str("llama")},
      {"t.u8", typed(GgufType::U8, uint64_t{255})},
      {"t.i8", typed(GgufType::I8, int64_t{-128})},
      {"t.u16", typed(GgufType::U16, uint64_t{65535})},
      {"t.i16", typed(GgufType::I16, int64_t{-32768})},
      {"t.u32", gguf_u32(4000000000u)},
      {"t.i32", gguf_i32(-2000000000)},
      {"t.u64", typed(GgufType::U64, uint64_t{1} << 63)},
      {"t.i64", typed(GgufType::I64, int64_t{-(int64_t{1} << 62)})},
      {"t.f32", gguf_f32(0.1f)},
      {"t.f64", typed(GgufType::F64, 0.1)},
      {"t.bool", gguf_bool(true)},
      {"t.str", gguf_str("h\xc3\xa9llo \xe2\x96\x81 world")},
      {"t.empty_str", gguf_str("")},
      {"t.strs", gguf_str_array({"<s>", "", "\xe2\x96\x81the"})},
      {"t.f32s", gguf_f32_array({1.5f, -0.0f, 3e-8f})},
      {"t.i32s", gguf_i32_array({7, -7, 0})},
      {"t.empty_arr", gguf_f32_array({})},
      {"t.nested", GgufValue{GgufType::ARRAY, nested}},
  };
  const std::vector<TensorToWrite> ts = {
      pattern_tensor("a.f32", WeightType::F32, {3}, 1),  // 12 bytes: the next tensor must be padded
      pattern_tensor("b.f16", WeightType::F16, {5, 3}, 2),
      pattern_tensor("c.q8_0", WeightType::Q8_0, {64, 3}, 3),
      pattern_tensor("d.q4_k", WeightType::Q4_K, {256, 2}, 4),
      pattern_tensor("e.3d", WeightType::BF16, {4, 3, 2}, 5),
  };
  const std::string path = work("roundtrip.gguf");
  auto st = write_gguf(path, md, ts);
  ASSERT_TRUE(st.ok()) << st.error().message;

  auto f = open_gguf(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(f->alignment, 32u);
  EXPECT_EQ(f->data_offset % 32, 0u);
  ASSERT_EQ(f->metadata.size(), md.size());
  for (size_t i = 0; i < md.size(); ++i) {
    EXPECT_EQ(f->metadata[i].first, md[i].first) << "metadata order";
    expect_same_value(f->metadata[i].second, md[i].second, md[i].first);
  }
  ASSERT_EQ(f->tensors.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = f->tensors[i];
    EXPECT_EQ(t.name, ts[i].name);
    EXPECT_EQ(t.type, ts[i].type) << t.name;
    EXPECT_EQ(t.ne, ts[i].ne) << t.name;
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    const auto expect = pattern_bytes(ts[i]);
    ASSERT_EQ(t.nbytes, expect.size()) << t.name;
    EXPECT_EQ(std::memcmp(f->tensor_data(t), expect.data(), expect.size()), 0) << t.name;
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

TEST(GgufWriter, ReproducesLlamaCppFileByteForByte) {
  // stories260K.gguf was written by llama.cpp (v3, alignment 32): re-writing its metadata and
  // tensors must give the identical file, which pins layout, padding and value encoding.
  const std::string src = std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf";
  auto f = open_gguf(src);
  ASSERT_TRUE(f.ok()) << f.error().message;
  std::vector<TensorToWrite> ts;
  for (const auto& t : f->tensors) {
    const uint8_t* data = f->tensor_data(t);
    const size_t n = t.nbytes;
    ts.push_back({t.name, t.type, t.ne, [data, n](uint8_t* dst) { std::memcpy(dst, data, n); }});
  }
  const std::string out = work("stories_copy.gguf");
  auto st = write_gguf(out, f->metadata, ts);
  ASSERT_TRUE(st.ok()) << st.error().message;
  const auto a = read_bytes(src), b = read_bytes(out);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b);
}

TEST(GgufWriter, HonoursGeneralAlignment) {
  const std::string path = work("align64.gguf");
  auto st = write_gguf(path, {{"general.alignment", gguf_u32(64)}},
                       {pattern_tensor("x", WeightType::F32, {5}, 9), pattern_tensor("y", WeightType::F32, {7}, 8)});
  ASSERT_TRUE(st.ok()) << st.error().message;
  auto f = open_gguf(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->alignment, 64u);
  EXPECT_EQ(f->data_offset % 64, 0u);
  EXPECT_EQ(f->tensors[1].offset, 64u);

  auto bad = write_gguf(work("align_bad.gguf"), {{"general.alignment", gguf_u32(48)}}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("power of two"), std::string::npos) << bad.error().message;
}

TEST(GgufWriter, RejectsBadInputWithoutLeavingAFile) {
  const std::string path = work("bad.gguf");
  std::filesystem::remove(path);
  struct Case {
    std::vector<std::pair<std::string, GgufValue>> md;
    std::vector<TensorToWrite> ts;
    const char* fragment;
  };
  const Case cases[] = {
      {{}, {pattern_tensor("rows", WeightType::Q4_0, {48, 2}, 0)}, "not a multiple of the q4_0 block size 32"},
      {{}, {pattern_tensor("dup", WeightType::F32, {4}, 0), pattern_tensor("dup", WeightType::F32, {4}, 1)},
       "duplicate tensor 'dup'"},
      {{}, {pattern_tensor("zero", WeightType::F32, {4, 0}, 0)}, "tensor 'zero' has dimension 0"},
      {{{"k.bad", GgufValue{GgufType::STRING, uint64_t{3}}}}, {}, "'k.bad': value does not match its type string"},
      {{{"k.arr", GgufValue{GgufType::ARRAY, gguf_u32(1).v}}}, {}, "'k.arr': value does not match its type array"},
  };
  for (const auto& c : cases) {
    auto st = write_gguf(path, c.md, c.ts);
    ASSERT_FALSE(st.ok()) << c.fragment;
    EXPECT_NE(st.error().message.find(c.fragment), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().message.find(path), std::string::npos) << st.error().message;
    EXPECT_FALSE(std::filesystem::exists(path)) << c.fragment;
    EXPECT_FALSE(std::filesystem::exists(path + ".partial")) << c.fragment;
  }
}

TEST(GgufWriter, UnwritablePathIsAnError) {
  auto st = write_gguf("/nonexistent-dir/x.gguf", {}, {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("/nonexistent-dir/x.gguf"), std::string::npos) << st.error().message;
}
