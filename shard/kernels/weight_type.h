// Weight types, numbered as ggml numbers them in GGUF files, and their block geometry.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tandem {

enum class WeightType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q5_0 = 6,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,  // activation-side type only (used by the K-quant dot products)
  BF16 = 30,
};

struct WeightTypeInfo {
  std::string_view name;  // "f32", "q4_0", ... (the --type spelling)
  int64_t block_elems;    // elements per block (1 for float types)
  size_t block_bytes;     // bytes per block
};

// Geometry of a supported type; nullopt for a ggml type number tandem does not read.
std::optional<WeightTypeInfo> weight_type_info(uint32_t ggml_type);
const WeightTypeInfo& info(WeightType t);
std::string_view name(WeightType t);
std::optional<WeightType> parse_weight_type(std::string_view s);  // "q8_0", "Q8_0", "bf16", ...

// Bytes of `n` elements of type `t`; n must be a multiple of the block size.
inline size_t row_bytes(WeightType t, int64_t n) {
  const auto& i = info(t);
  return static_cast<size_t>(n / i.block_elems) * i.block_bytes;
}

// The weight types a model can be stored in (what synth and quantize accept).
inline constexpr WeightType kModelWeightTypes[] = {WeightType::F32,  WeightType::F16,  WeightType::BF16,
                                                   WeightType::Q8_0, WeightType::Q4_0, WeightType::Q5_0,
                                                   WeightType::Q4_K, WeightType::Q5_K, WeightType::Q6_K};

}  // namespace tandem
