#include "shard/model/shard_model.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "shard/log.h"
#include "shard/kernels/quant.h"

namespace tandem {
namespace {

std::vector<float> read_norm(const TensorRef& t) {
  std::vector<float> v(t.cols());
  dequantize_row(t.type, t.data, v.data(), t.cols());
  return v;
}

}  // namespace

std::vector<float> rope_inverse_frequencies(const ModelConfig& c, const std::vector<float>& freq_factors) {
  const int half = c.rope_dim / 2;
  std::vector<float> f(half);
  for (int i = 0; i < half; ++i) {
    float freq = 1.0f / std::pow(c.rope_theta, (2.0f * i) / static_cast<float>(c.rope_dim));
    const auto& s = c.rope_scaling;
    if (s.kind == RopeScaling::Kind::Linear) {
      freq /= s.factor;
    } else if (s.kind == RopeScaling::Kind::Llama3) {
      // Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
      const float wavelen = 2.0f * std::numbers::pi_v<float> / freq;
      const float low_wavelen = s.original_ctx / s.low_freq_factor;
      const float high_wavelen = s.original_ctx / s.high_freq_factor;
      if (wavelen > low_wavelen) {
        freq /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = (s.original_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        freq = (1.0f - smooth) * freq / s.factor + smooth * freq;
      }
    }
    if (static_cast<size_t>(i) < freq_factors.size()) freq /= freq_factors[i];
    f[i] = freq;
  }
  return f;
}

namespace {

// One walk over the shard for both uses: loading packs the weights; with `record` set it only
// notes which bytes of the file the loading (and run-time lookups) touch.
Result<ShardModel> walk_shard(const ModelFile& f, const ShardSpec& spec, std::vector<ByteRange>* record) {
  const ModelConfig& c = f.config;
  const uint8_t* base = f.map ? f.map->data : nullptr;
  auto note = [&](const uint8_t* p, uint64_t n) {
    if (record && n) record->push_back({static_cast<uint64_t>(p - base), n});
  };
  ShardModel m;
  m.config = c;
  m.spec = spec;
  m.map = f.map;

  auto first = f.require(tensor_name_layer(0, "attn_output"));
  if (!first) return first.error();
  auto down0 = f.require(tensor_name_layer(0, "ffn_down"));
  if (!down0) return down0.error();
  auto ranges = shard_ranges(c, spec, (*first)->type, (*down0)->type);
  if (!ranges) return make_error("{}: {}", f.path, ranges.error().message);
  m.ranges = *ranges;
  const ShardRanges& r = m.ranges;
  const int hd = c.head_dim;
  if (c.n_heads / c.n_kv_heads > 256)
    return make_error("{}: {} query heads per KV head is more than the attention kernels take (256)", f.path,
                      c.n_heads / c.n_kv_heads);

  // Column-parallel: this rank's output rows. Row-parallel: this rank's input columns of every row.
  auto rows = [&](const TensorRef* t, int64_t row0, int64_t n) {
    m.bytes_loaded += static_cast<uint64_t>(n) * t->row_bytes();
    if (record) {
      note(t->row(row0), static_cast<uint64_t>(n) * t->row_bytes());
      return PackedMatrix{};
    }
    return pack_matrix(t->type, n, t->cols(), t->row(row0), t->row_bytes());
  };
  auto cols = [&](const TensorRef* t, int64_t col0, int64_t n) {
    const size_t off = row_bytes(t->type, col0);
    m.bytes_loaded += static_cast<uint64_t>(t->rows()) * row_bytes(t->type, n);
    if (record) {
      for (int64_t r0 = 0; r0 < t->rows(); ++r0) note(t->row(r0) + off, row_bytes(t->type, n));
      return PackedMatrix{};
    }
    return pack_matrix(t->type, t->rows(), n, t->data + off, t->row_bytes());
  };
  auto norm = [&](const TensorRef* t) {
    m.bytes_loaded += t->nbytes;
    note(t->data, t->nbytes);
    return read_norm(*t);
  };
  // Elements [begin, begin + n) of a vector (a bias of this rank's rows). Float vectors are read
  // in that range only; a block-quantized one whole (its blocks need not align with the range).
  auto slice = [&](const TensorRef* t, int64_t begin, int64_t n) {
    const int64_t block = info(t->type).block_elems;
    std::vector<float> v(n);
    if (begin % block == 0 && n % block == 0) {
      m.bytes_loaded += row_bytes(t->type, n);
      note(t->data + row_bytes(t->type, begin), row_bytes(t->type, n));
      dequantize_row(t->type, t->data + row_bytes(t->type, begin), v.data(), n);
    } else {
      const std::vector<float> all = norm(t);
      std::copy(all.begin() + begin, all.begin() + begin + n, v.begin());
    }
    return v;
  };
  const bool qk_norm = arch_of(c).qk_norm;

  for (int l = r.layer_begin; l < r.layer_end; ++l) {
    LayerWeights w;
    const TensorRef *an, *fn, *q, *k, *v, *o, *g, *u, *d;
    auto get = [&](const char* what, int64_t cols_, int64_t rows_, const TensorRef*& out) -> Status {
      auto t = f.require(tensor_name_layer(l, what), cols_, rows_);
      if (!t) return t.error();
      out = *t;
      return ok_status();
    };
    TANDEM_TRY(get("attn_norm", c.dim, 1, an));
    TANDEM_TRY(get("ffn_norm", c.dim, 1, fn));
    TANDEM_TRY(get("attn_q", c.dim, c.q_dim(), q));
    TANDEM_TRY(get("attn_k", c.dim, c.kv_dim(), k));
    TANDEM_TRY(get("attn_v", c.dim, c.kv_dim(), v));
    TANDEM_TRY(get("attn_output", c.q_dim(), c.dim, o));
    TANDEM_TRY(get("ffn_gate", c.dim, c.ffn_dim, g));
    TANDEM_TRY(get("ffn_up", c.dim, c.ffn_dim, u));
    TANDEM_TRY(get("ffn_down", c.ffn_dim, c.dim, d));
    w.attn_norm = norm(an);
    w.ffn_norm = norm(fn);
    w.wq = rows(q, static_cast<int64_t>(r.q_head_begin) * hd, static_cast<int64_t>(r.n_q_heads()) * hd);
    w.wk = rows(k, static_cast<int64_t>(r.kv_head_begin) * hd, static_cast<int64_t>(r.n_kv_heads()) * hd);
    w.wv = rows(v, static_cast<int64_t>(r.kv_head_begin) * hd, static_cast<int64_t>(r.n_kv_heads()) * hd);
    w.wo = cols(o, static_cast<int64_t>(r.q_head_begin) * hd, static_cast<int64_t>(r.n_q_heads()) * hd);
    w.w_gate = rows(g, r.ffn_begin, r.n_ffn());
    w.w_up = rows(u, r.ffn_begin, r.n_ffn());
    w.w_down = cols(d, r.ffn_begin, r.n_ffn());
    // Optional q/k/v biases (any family, as llama.cpp): the rows of this rank's heads.
    auto bias = [&](const char* what, int64_t n, int64_t begin, int64_t count) -> Result<std::vector<float>> {
      const std::string name = tensor_bias_layer(l, what);
      if (!f.find(name)) return std::vector<float>{};
      auto t = f.require(name, n, 1);
      if (!t) return t.error();
      return slice(*t, begin, count);
    };
    const int64_t q0 = static_cast<int64_t>(r.q_head_begin) * hd, nq = static_cast<int64_t>(r.n_q_heads()) * hd;
    const int64_t k0 = static_cast<int64_t>(r.kv_head_begin) * hd, nk = static_cast<int64_t>(r.n_kv_heads()) * hd;
    auto bq = bias("attn_q", c.q_dim(), q0, nq);
    if (!bq) return bq.error();
    auto bk = bias("attn_k", c.kv_dim(), k0, nk);
    if (!bk) return bk.error();
    auto bv = bias("attn_v", c.kv_dim(), k0, nk);
    if (!bv) return bv.error();
    w.bq = std::move(*bq);
    w.bk = std::move(*bk);
    w.bv = std::move(*bv);
    if (qk_norm) {  // per head dimension, the same for every head: replicated on every rank
      const TensorRef *qn, *kn;
      TANDEM_TRY(get("attn_q_norm", hd, 1, qn));
      TANDEM_TRY(get("attn_k_norm", hd, 1, kn));
      w.q_norm = norm(qn);
      w.k_norm = norm(kn);
    }
    for (const PackedMatrix* p : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down}) m.bytes_per_token += p->bytes;
    m.layers.push_back(std::move(w));
    spdlog::debug("loaded layer {} of {}", l + 1, c.n_layers);
  }

  if (spec.has_embedding) {
    auto e = f.require(kTokenEmbd, c.dim, c.n_vocab);
    if (!e) return e.error();
    m.token_embd = **e;  // rows are read (and counted) on lookup
    note((*e)->data, (*e)->nbytes);
  }
  if (spec.has_head) {
    auto on = f.require(kOutputNorm, c.dim, 1);
    if (!on) return on.error();
    m.output_norm = norm(*on);
    auto head = f.require(c.tied_output ? kTokenEmbd : kOutput, c.dim, c.n_vocab);
    if (!head) return head.error();
    m.output = rows(*head, r.vocab_begin, r.n_vocab());
    m.bytes_per_token += m.output.bytes;
  }
  std::vector<float> factors;
  if (const TensorRef* rf = f.find(kRopeFreqs)) {
    note(rf->data, rf->nbytes);
    factors = read_norm(*rf);
  }
  m.rope_inv_freq = rope_inverse_frequencies(c, factors);
  m.rope_style = arch_of(c).rope;
  return m;
}

}  // namespace

Result<ShardModel> load_shard(const ModelFile& f, const ShardSpec& spec) { return walk_shard(f, spec, nullptr); }

std::vector<ByteRange> merge_ranges(std::vector<ByteRange> r) {
  std::sort(r.begin(), r.end(), [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  std::vector<ByteRange> out;
  for (const auto& x : r) {
    if (x.length == 0) continue;
    if (!out.empty() && x.offset <= out.back().offset + out.back().length)
      out.back().length = std::max(out.back().length, x.offset + x.length - out.back().offset);
    else
      out.push_back(x);
  }
  return out;
}

Result<std::vector<ByteRange>> shard_file_ranges(const ModelFile& f, const ShardSpec& spec) {
  std::vector<ByteRange> r;
  auto m = walk_shard(f, spec, &r);
  if (!m) return m.error();
  return merge_ranges(std::move(r));
}

}  // namespace tandem
