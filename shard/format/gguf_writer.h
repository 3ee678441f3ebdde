// Writes GGUF v3 files: metadata in the given order, tensors aligned to general.alignment (32),
// tensor bytes produced one tensor at a time so multi-GB models never sit in memory whole.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "shard/format/gguf_reader.h"
#include "shard/result.h"
#include "shard/kernels/weight_type.h"

namespace tandem {

struct TensorToWrite {
  std::string name;
  WeightType type = WeightType::F32;
  std::vector<int64_t> ne;                   // ggml order
  std::function<void(uint8_t* dst)> fill;    // writes exactly row_bytes(type, ne[0]) * rows bytes
};

// Convenience constructors for metadata values.
GgufValue gguf_u32(uint32_t v);
GgufValue gguf_i32(int32_t v);
GgufValue gguf_f32(float v);
GgufValue gguf_bool(bool v);
GgufValue gguf_str(std::string v);
GgufValue gguf_str_array(std::vector<std::string> v);
GgufValue gguf_f32_array(const std::vector<float>& v);
GgufValue gguf_i32_array(const std::vector<int32_t>& v);

Status write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                  const std::vector<TensorToWrite>& tensors);

}  // namespace tandem
