// Bit-exact (de)quantization of ggml block formats, one row at a time.
// Layouts follow ggml: Q8_0 = {f16 d; int8 qs[32]}, Q4_0 = {f16 d; uint8 qs[16]} (low nibbles are
// elements 0..15, high nibbles 16..31, value = (q - 8) * d), Q5_0 = {f16 d; uint8 qh[4]; uint8
// qs[16]} (5-bit q, value = (q - 16) * d), Q4_K / Q5_K / Q6_K / Q8_K = 256-element super-blocks
// as in ggml-common.h (see blocks.h).
#pragma once
#include <cstdint>

#include "shard/kernels/weight_type.h"

namespace tandem {

// n must be a multiple of the type's block size.
void dequantize_row(WeightType t, const void* src, float* dst, int64_t n);
void quantize_row(WeightType t, const float* src, void* dst, int64_t n);

// IEEE half / bfloat16 conversions (round to nearest even), scalar.
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

}  // namespace tandem
