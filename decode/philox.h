// Counter-based randomness (Philox-4x32-10, Salmon et al., SC'11 "Parallel random numbers: as easy
// as 1, 2, 3"). Every uniform used in generation is a pure function of
// (request seed, absolute position, purpose, index): there is no generator state to carry, split or
// replay, so the generated text does not depend on batching, rank layout, micro-batch order or
// timing, and the speculative paths (draft, accept test, residual, bonus) each get their own stream.
//
// Why no uniform is used twice for one decision: the key is the request seed and the counter is
// (position, purpose, index), so two decisions share a uniform only if they are the same kind of
// decision at the same position. A committed token at position n consumes only uniforms keyed by
// positions <= n; uniforms keyed by later positions are therefore independent of everything already
// committed, even when a discarded speculative block used them before (a re-draft of position n+1
// after a rejection at n reuses the kDraft uniform of n+1, whose earlier use left no trace in the
// output). The scheduler must never run two *kept* decisions of the same purpose at one position.
#pragma once
#include <array>
#include <cstdint>

namespace tandem {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// The Philox-4x32 block function with `rounds` rounds (10 is the standard, crush-resistant choice;
// other counts exist only to check against the published 7-round answers too).
constexpr PhiloxCounter philox4x32(PhiloxCounter ctr, PhiloxKey key, int rounds = 10) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
  for (int r = 0; r < rounds; ++r) {
    if (r > 0) {
      key[0] += kW0;
      key[1] += kW1;
    }
    const uint64_t p0 = uint64_t{kM0} * ctr[0];
    const uint64_t p1 = uint64_t{kM1} * ctr[2];
    ctr = {static_cast<uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<uint32_t>(p0)};
  }
  return ctr;
}

// What a uniform decides. The values are part of the output's definition (changing one changes
// every sampled completion for a given seed), so never renumber; only append.
enum class Purpose : uint32_t {
  kSample = 1,    // ordinary sampling of the target's token at a position (also the bonus token)
  kDraft = 2,     // the drafter sampling its token for a position
  kAccept = 3,    // the accept test of the draft token at a position
  kResidual = 4,  // sampling from norm(max(0, p - q)) after a rejection at a position
};

// 128 random bits for (seed, position, purpose, index): key = seed, counter = (position low,
// position high, purpose, index). `index` separates several draws of one purpose at one position.
constexpr PhiloxCounter philox_bits(uint64_t seed, uint64_t position, Purpose purpose,
                                    uint32_t index = 0) {
  return philox4x32({static_cast<uint32_t>(position), static_cast<uint32_t>(position >> 32),
                     static_cast<uint32_t>(purpose), index},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

// Uniform double in [0, 1) with 53 random bits (every value is a multiple of 2^-53, so 1 is never
// returned and inverse-CDF sampling can compare `u * total < cumulative` safely).
constexpr double uniform(uint64_t seed, uint64_t position, Purpose purpose, uint32_t index = 0) {
  const PhiloxCounter b = philox_bits(seed, position, purpose, index);
  const uint64_t bits = ((uint64_t{b[0]} << 32) | b[1]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

}  // namespace tandem
