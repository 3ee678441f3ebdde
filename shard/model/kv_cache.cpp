#include "shard/model/kv_cache.h"

#include <sys/mman.h>
#include <unistd.h>

namespace tandem {

uint64_t kv_cache_bytes(const KvCacheConfig& c) {
  // Saturates: a product past 2^64 wrapped to a small number would pass the memory check below.
  uint64_t b = c.type == WeightType::F32 ? 8 : 4;  // K and V, element bytes
  for (int f : {c.n_layers, c.max_seqs, c.n_kv_heads, c.ctx, c.head_dim})
    if (f < 0 || __builtin_mul_overflow(b, static_cast<uint64_t>(f), &b)) return UINT64_MAX;
  return b;
}

Result<KvCache> make_kv_cache(const KvCacheConfig& c) {
  if (c.type != WeightType::F16 && c.type != WeightType::F32)
    return make_error("KV cache type must be f16 or f32 (got {})", name(c.type));
  if (c.max_seqs < 1 || c.ctx < 1) return make_error("KV cache needs at least one slot and one position");
  if (c.n_layers < 0 || c.n_kv_heads < 0 || c.head_dim < 0)
    return make_error("KV cache shape {} layers × {} KV heads × {} head dimension is invalid", c.n_layers, c.n_kv_heads,
                      c.head_dim);
  KvCache kv;
  kv.cfg = c;
  kv.elem_bytes = c.type == WeightType::F32 ? 4 : 2;
  kv.length.assign(c.max_seqs, 0);
  kv.bytes = kv_cache_bytes(c);
  if (kv.bytes == 0) return kv;  // a stage with no layers
  const uint64_t phys = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
  if (kv.bytes > phys)
    return make_error("KV cache of {:.2f} GiB ({} slots × {} positions) exceeds this machine's {:.2f} GiB of memory; "
                      "lower --ctx-size or --max-seqs", kv.bytes / 1073741824.0, c.max_seqs, c.ctx, phys / 1073741824.0);
  // Anonymous mmap: pages appear on first write, so a large --ctx-size costs only what is used.
  void* p = mmap(nullptr, kv.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return make_error("cannot allocate a KV cache of {} bytes", kv.bytes);
  const size_t n = kv.bytes;
  kv.data = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [n](uint8_t* q) { munmap(q, n); });
  return kv;
}

}  // namespace tandem
