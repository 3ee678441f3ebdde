// GGUF v2/v3 reader: header, typed metadata, tensor infos, aligned data section, over an mmap.
// Every length and count is checked against the file size, so a malformed file is an Error
// naming the file and the problem, never a crash.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "shard/format/mapped_file.h"
#include "shard/result.h"
#include "shard/kernels/weight_type.h"

namespace tandem {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

struct GgufValue;
struct GgufArray {
  GgufType elem = GgufType::U8;
  std::vector<GgufValue> items;
};

// A metadata value. Integers of every width are held as int64/uint64, floats as double; `type`
// keeps the on-disk type so a writer can reproduce it exactly.
struct GgufValue {
  GgufType type = GgufType::U32;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v;

  std::optional<int64_t> as_int() const;  // any integer type (and bool)
  std::optional<double> as_float() const;  // any numeric type
  const std::string* as_string() const;
  const GgufArray* as_array() const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous (input) dimension
  WeightType type = WeightType::F32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t nbytes = 0;
  int64_t n_elements() const;
};

struct GgufFile {
  std::string path;
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // absolute file offset of the data section
  std::vector<std::pair<std::string, GgufValue>> metadata;  // file order
  std::vector<GgufTensorInfo> tensors;                       // file order
  std::shared_ptr<const MappedFile> map;

  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return map->data + data_offset + t.offset; }

  // Typed metadata getters: nullopt when the key is absent or of a non-convertible type.
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;  // empty when absent
  std::vector<float> get_floats(const std::string& key) const;
  std::vector<int32_t> get_ints(const std::string& key) const;
};

Result<GgufFile> open_gguf(const std::string& path);
Result<GgufFile> parse_gguf(std::shared_ptr<const MappedFile> map);  // for in-memory tests

std::string_view gguf_type_name(GgufType t);
std::string format_value(const GgufValue& v, size_t max_items = 8);  // for `model info`

}  // namespace tandem
