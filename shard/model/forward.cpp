#include "shard/model/forward.h"

#include <algorithm>
#include <cmath>

#include "shard/kernels/attention.h"
#include "shard/kernels/quant.h"
#include "shard/kernels/row_kernels.h"
#include "shard/model/layer_ops.h"

namespace tandem {

BatchRows batch_rows(std::span<const SeqChunk> batch) {
  BatchRows b;
  for (const auto& c : batch) {
    const int n = static_cast<int>(c.tokens.size());
    for (int i = 0; i < n; ++i) {
      b.slot.push_back(c.slot);
      b.pos.push_back(c.pos0 + i);
      if (c.all_logits || i == n - 1) b.out_rows.push_back(b.n_rows);
      ++b.n_rows;
    }
  }
  return b;
}

Status check_batch(const ShardModel& m, const KvCache& kv, std::span<const SeqChunk> batch) {
  std::vector<char> seen(kv.cfg.max_seqs, 0);
  for (const auto& c : batch) {
    if (c.slot < 0 || c.slot >= kv.cfg.max_seqs) return make_error("sequence slot {} is out of range [0, {})", c.slot, kv.cfg.max_seqs);
    if (seen[c.slot]++) return make_error("sequence slot {} appears twice in one batch", c.slot);
    if (c.tokens.empty()) return make_error("empty chunk for slot {}", c.slot);
    if (c.pos0 < 0 || c.pos0 > kv.length[c.slot])
      return make_error("slot {}: chunk starts at position {} but the cache holds {} positions", c.slot, c.pos0, kv.length[c.slot]);
    if (c.pos0 + static_cast<int64_t>(c.tokens.size()) > kv.cfg.ctx)
      return make_error("slot {}: positions up to {} exceed the context size {}", c.slot, c.pos0 + c.tokens.size(), kv.cfg.ctx);
    if (m.spec.has_embedding)
      for (int32_t t : c.tokens)
        if (t < 0 || t >= m.config.n_vocab) return make_error("token id {} is outside the vocabulary [0, {})", t, m.config.n_vocab);
  }
  return ok_status();
}

namespace {

void attention(const ShardModel& m, const KvCache& kv, int layer, const BatchRows& b, ThreadPool& pool,
               ForwardScratch& s) {
  const ModelConfig& c = m.config;
  const ShardRanges& r = m.ranges;
  const int hd = c.head_dim, nkv = r.n_kv_heads(), qdim = r.n_q_heads() * hd;
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t tasks = static_cast<int64_t>(b.n_rows) * nkv;
  if (static_cast<int>(s.scores.size()) < pool.size()) s.scores.resize(pool.size());
  // Each (row, kv head) task is computed whole by one thread: the result is the same for any
  // thread count or batch composition.
  pool.run([&](int t, int nt) {
    const int64_t begin = tasks * t / nt, end = tasks * (t + 1) / nt;
    std::vector<float>& sc = s.scores[t];
    for (int64_t task = begin; task < end; ++task) {
      const int row = static_cast<int>(task / nkv), g = static_cast<int>(task % nkv);
      const int kvh = r.kv_head_begin + g;
      const int h0 = std::max(r.q_head_begin, kvh * group), h1 = std::min(r.q_head_end, (kvh + 1) * group);
      const int nq = h1 - h0;
      if (nq <= 0) continue;
      const int n_pos = b.pos[row] + 1;
      sc.resize(static_cast<size_t>(nq) * n_pos);
      // The 1/sqrt(d) scale goes on q (head_dim multiplies) rather than on every score.
      float* q = s.q.data() + static_cast<int64_t>(row) * qdim + (h0 - r.q_head_begin) * hd;
      for (int i = 0; i < nq * hd; ++i) q[i] *= scale;
      attn_scores(q, nq, hd, kv.head(0, layer, b.slot[row], g), kv.row_stride(), kv.cfg.type, n_pos, sc.data());
      float sums[256];
      for (int h = 0; h < nq; ++h) sums[h] = exp_shifted(sc.data() + static_cast<int64_t>(h) * n_pos, n_pos);
      float* out = s.att.data() + static_cast<int64_t>(row) * qdim + (h0 - r.q_head_begin) * hd;
      std::fill(out, out + static_cast<int64_t>(nq) * hd, 0.0f);
      attn_values(sc.data(), nq, n_pos, kv.head(1, layer, b.slot[row], g), kv.row_stride(), kv.cfg.type, hd, out);
      // Normalise the weighted values once per head instead of every probability.
      for (int h = 0; h < nq; ++h) {
        const float inv = 1.0f / sums[h];
        for (int d = 0; d < hd; ++d) out[h * hd + d] *= inv;
      }
    }
  });
}

}  // namespace

Status forward_stage(const ShardModel& m, KvCache& kv, std::span<const SeqChunk> batch, Collectives& coll,
                     ThreadPool& pool, ForwardScratch& s, std::vector<float>& hidden, std::vector<float>* logits) {
  TANDEM_TRY(check_batch(m, kv, batch));
  const ModelConfig& c = m.config;
  const ShardRanges& r = m.ranges;
  const BatchRows b = batch_rows(batch);
  const int R = b.n_rows, D = c.dim, hd = c.head_dim;
  const int qdim = r.n_q_heads() * hd, kvdim = r.n_kv_heads() * hd, F = r.n_ffn();

  if (m.spec.has_embedding) {
    hidden.resize(static_cast<size_t>(R) * D);
    int row = 0;
    for (const auto& ch : batch)
      for (int32_t t : ch.tokens) dequantize_row(m.token_embd.type, m.token_embd.row(t), hidden.data() + static_cast<int64_t>(row++) * D, D);
  } else if (hidden.size() != static_cast<size_t>(R) * D) {
    return make_error("stage input has {} values, expected {} rows × {}", hidden.size(), R, D);
  }
  s.xn.resize(static_cast<size_t>(R) * D);
  s.q.resize(static_cast<size_t>(R) * qdim);
  s.k.resize(static_cast<size_t>(R) * kvdim);
  s.v.resize(static_cast<size_t>(R) * kvdim);
  s.att.resize(static_cast<size_t>(R) * qdim);
  s.gate.resize(static_cast<size_t>(R) * F);
  s.up.resize(static_cast<size_t>(R) * F);
  float* x = hidden.data();

  for (int li = 0; li < r.n_layers(); ++li) {
    const LayerWeights& w = m.layers[li];
    for (int i = 0; i < R; ++i) rms_norm(x + static_cast<int64_t>(i) * D, w.attn_norm.data(), s.xn.data() + static_cast<int64_t>(i) * D, D, c.rms_eps);
    matmul(w.wq, s.xn.data(), R, s.q.data(), qdim, pool);
    matmul(w.wk, s.xn.data(), R, s.k.data(), kvdim, pool);
    matmul(w.wv, s.xn.data(), R, s.v.data(), kvdim, pool);
    // The family's optional pieces (arch.h): biases of this rank's q/k/v rows, then RMSNorm of
    // every q and k head, both before RoPE (llama.cpp's build_qkv, then qwen3's q/k norms).
    if (!w.bq.empty()) add_bias(s.q.data(), R, qdim, w.bq.data());
    if (!w.bk.empty()) add_bias(s.k.data(), R, kvdim, w.bk.data());
    if (!w.bv.empty()) add_bias(s.v.data(), R, kvdim, w.bv.data());
    const bool qk_norm = !w.q_norm.empty();
    for (int i = 0; i < R; ++i) {
      float* qi = s.q.data() + static_cast<int64_t>(i) * qdim;
      float* ki = s.k.data() + static_cast<int64_t>(i) * kvdim;
      if (qk_norm) {
        for (int h = 0; h < r.n_q_heads(); ++h) rms_norm(qi + h * hd, w.q_norm.data(), qi + h * hd, hd, c.rms_eps);
        for (int g = 0; g < r.n_kv_heads(); ++g) rms_norm(ki + g * hd, w.k_norm.data(), ki + g * hd, hd, c.rms_eps);
      }
      rope(qi, r.n_q_heads(), hd, c.rope_dim, b.pos[i], m.rope_inv_freq.data(), m.rope_style);
      rope(ki, r.n_kv_heads(), hd, c.rope_dim, b.pos[i], m.rope_inv_freq.data(), m.rope_style);
      for (int g = 0; g < r.n_kv_heads(); ++g) {
        const size_t off = static_cast<size_t>(b.pos[i]) * kv.row_stride();
        f32_to_kv(s.k.data() + static_cast<int64_t>(i) * kvdim + g * hd, kv.head(0, li, b.slot[i], g) + off, hd, kv.cfg.type);
        f32_to_kv(s.v.data() + static_cast<int64_t>(i) * kvdim + g * hd, kv.head(1, li, b.slot[i], g) + off, hd, kv.cfg.type);
      }
    }
    attention(m, kv, li, b, pool, s);
    // Row-parallel output projection: partial sums over this rank's heads, reduced across TP.
    matmul(w.wo, s.att.data(), R, s.xn.data(), D, pool);
    coll.allreduce_sum(s.xn.data(), static_cast<int64_t>(R) * D);
    for (int64_t i = 0; i < static_cast<int64_t>(R) * D; ++i) x[i] += s.xn[i];

    for (int i = 0; i < R; ++i) rms_norm(x + static_cast<int64_t>(i) * D, w.ffn_norm.data(), s.xn.data() + static_cast<int64_t>(i) * D, D, c.rms_eps);
    matmul(w.w_gate, s.xn.data(), R, s.gate.data(), F, pool);
    matmul(w.w_up, s.xn.data(), R, s.up.data(), F, pool);
    silu_mul(s.gate.data(), s.up.data(), static_cast<int64_t>(R) * F);
    matmul(w.w_down, s.gate.data(), R, s.xn.data(), D, pool);
    coll.allreduce_sum(s.xn.data(), static_cast<int64_t>(R) * D);
    for (int64_t i = 0; i < static_cast<int64_t>(R) * D; ++i) x[i] += s.xn[i];
  }
  for (const auto& ch : batch) kv.length[ch.slot] = ch.pos0 + static_cast<int>(ch.tokens.size());

  if (m.spec.has_head && logits) {
    const int n_out = static_cast<int>(b.out_rows.size());
    s.sel.resize(static_cast<size_t>(n_out) * D);
    for (int i = 0; i < n_out; ++i)
      rms_norm(x + static_cast<int64_t>(b.out_rows[i]) * D, m.output_norm.data(), s.sel.data() + static_cast<int64_t>(i) * D, D, c.rms_eps);
    logits->resize(static_cast<size_t>(n_out) * r.n_vocab());
    matmul(m.output, s.sel.data(), n_out, logits->data(), r.n_vocab(), pool);
  }
  return ok_status();
}

}  // namespace tandem
