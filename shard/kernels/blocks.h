// Byte layouts of the ggml block formats tandem reads (ggml-common.h), for the quantizers and the
// kernels' packers. Element i of a block is recovered as documented per struct.
#pragma once
#include <cstdint>

namespace tandem::blocks {

inline constexpr int kQK0 = 32;   // elements per Q8_0 / Q4_0 block
inline constexpr int kQKK = 256;  // elements per K-quant super-block

// value[i] = qs[i] * d
struct Q8_0 {
  uint16_t d;  // fp16
  int8_t qs[kQK0];
};

// value[i] = ((qs[i] & 15) - 8) * d, value[i + 16] = ((qs[i] >> 4) - 8) * d, i < 16
struct Q4_0 {
  uint16_t d;  // fp16
  uint8_t qs[kQK0 / 2];
};

// value[i] = (q_i - 16) * d with the 5-bit q_i = low nibble of qs[i] | bit i of qh << 4 and
// q_{i+16} = high nibble of qs[i] | bit i+16 of qh << 4, i < 16 (qh read as a little-endian u32).
struct Q5_0 {
  uint16_t d;  // fp16
  uint8_t qh[4];
  uint8_t qs[kQK0 / 2];
};

// Eight sub-blocks of 32; sub-block j has a 6-bit scale sc_j and 6-bit min m_j packed in `scales`
// (j < 4: low 6 bits of scales[j] / scales[j + 4]; j >= 4: nibbles of scales[j + 4] plus the top
// two bits of scales[j - 4] / scales[j]). value = d*sc_j * q - dmin*m_j. Quants: each 64-element
// chunk c uses qs[32c .. 32c+31], low nibbles for its first 32 elements, high nibbles for the rest.
struct Q4_K {
  uint16_t d;     // fp16
  uint16_t dmin;  // fp16
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};

// Q4_K with a fifth bit per quant (q in [0, 31], value = d*sc_j * q - dmin*m_j, scales/mins as
// Q4_K): each 64-element chunk c takes its low four bits from qs[32c .. 32c+31] (low nibbles for
// its first 32 elements, high nibbles for the rest) and its top bit from qh[l]: bit 2c for
// element 64c + l, bit 2c+1 for element 64c + 32 + l (l < 32).
struct Q5_K {
  uint16_t d;     // fp16
  uint16_t dmin;  // fp16
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};

// Sixteen sub-blocks of 16 with int8 scales; q in [0, 63], value = d * scales[s] * (q - 32).
// Each 128-element half h uses ql[64h ..], qh[32h ..], scales[8h ..]: for l < 32 the four
// elements l, l+32, l+64, l+96 take low nibbles of ql[l], ql[l+32], high nibbles of ql[l],
// ql[l+32], and bit pairs 0-1, 2-3, 4-5, 6-7 of qh[l] as their top two bits.
struct Q6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;  // fp16
};

// Activation side of K-quant dot products: value = d * qs[i]; bsums[k] = sum of qs[16k .. 16k+15].
struct Q8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

static_assert(sizeof(Q8_0) == 34 && sizeof(Q4_0) == 18 && sizeof(Q5_0) == 22 && sizeof(Q4_K) == 144 &&
              sizeof(Q5_K) == 176 && sizeof(Q6_K) == 210 && sizeof(Q8_K) == 292);

// The 6-bit scale and min of Q4_K / Q5_K sub-block j (0..7).
inline void q4k_scale_min(const uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Packs the eight 6-bit scales and mins of a Q4_K / Q5_K super-block (the inverse of q4k_scale_min).
inline void q4k_pack_scales(const uint8_t* sc, const uint8_t* m, uint8_t* s) {
  for (int i = 0; i < 12; ++i) s[i] = 0;
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] |= static_cast<uint8_t>(sc[j] & 63);
      s[j + 4] |= static_cast<uint8_t>(m[j] & 63);
    } else {
      s[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
      s[j - 4] |= static_cast<uint8_t>(((sc[j] >> 4) & 3) << 6);
      s[j] |= static_cast<uint8_t>(((m[j] >> 4) & 3) << 6);
    }
  }
}

}  // namespace tandem::blocks
