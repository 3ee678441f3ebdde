#include "shard/kernels/weight_type.h"

#include <cctype>
#include <stdexcept>
#include <string>

namespace tandem {
namespace {
// Block sizes from ggml-common.h: Q8_0 = f16 + 32 i8; Q4_0 = f16 + 16 bytes; Q4_K = 2 f16 + 12
// scale bytes + 128 nibble bytes; Q5_0 = f16 + 4 high-bit bytes + 16 nibble bytes; Q5_K = Q4_K plus
// 32 high-bit bytes; Q6_K = 128 + 64 + 16 + f16; Q8_K = f32 + 256 i8 + 16 i16.
constexpr WeightTypeInfo kF32{"f32", 1, 4};
constexpr WeightTypeInfo kF16{"f16", 1, 2};
constexpr WeightTypeInfo kBF16{"bf16", 1, 2};
constexpr WeightTypeInfo kQ8_0{"q8_0", 32, 34};
constexpr WeightTypeInfo kQ4_0{"q4_0", 32, 18};
constexpr WeightTypeInfo kQ5_0{"q5_0", 32, 22};
constexpr WeightTypeInfo kQ4_K{"q4_k", 256, 144};
constexpr WeightTypeInfo kQ5_K{"q5_k", 256, 176};
constexpr WeightTypeInfo kQ6_K{"q6_k", 256, 210};
constexpr WeightTypeInfo kQ8_K{"q8_k", 256, 292};

// The one place a type number maps to its geometry.
const WeightTypeInfo* lookup(uint32_t t) {
  switch (static_cast<WeightType>(t)) {
    case WeightType::F32: return &kF32;
    case WeightType::F16: return &kF16;
    case WeightType::BF16: return &kBF16;
    case WeightType::Q8_0: return &kQ8_0;
    case WeightType::Q4_0: return &kQ4_0;
    case WeightType::Q5_0: return &kQ5_0;
    case WeightType::Q4_K: return &kQ4_K;
    case WeightType::Q5_K: return &kQ5_K;
    case WeightType::Q6_K: return &kQ6_K;
    case WeightType::Q8_K: return &kQ8_K;
  }
  return nullptr;
}

}  // namespace

std::optional<WeightTypeInfo> weight_type_info(uint32_t t) {
  const WeightTypeInfo* i = lookup(t);
  return i ? std::optional<WeightTypeInfo>(*i) : std::nullopt;
}

const WeightTypeInfo& info(WeightType t) {
  const WeightTypeInfo* i = lookup(static_cast<uint32_t>(t));
  if (!i) throw std::logic_error("unknown WeightType");
  return *i;
}

std::string_view name(WeightType t) { return info(t).name; }

std::optional<WeightType> parse_weight_type(std::string_view s) {
  std::string lower;
  for (char c : s) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  for (WeightType t : kModelWeightTypes)
    if (info(t).name == lower) return t;
  return std::nullopt;
}

}  // namespace tandem
