// `tandem bench decode`: one rank's raw speed on a model (or a synthetic shape it makes itself):
// prompt processing and decode tokens/s, the weight bytes streamed per second, and that as a
// share of the machine's read bandwidth measured in the same run with the same thread count.
// Configurations are interleaved repetition by repetition and reported as medians, because the
// machine's speed drifts (other work, slow periods).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "bench/bench_commands.h"
#include "bench/bench_models.h"
#include "bench/bench_report.h"
#include "shard/model/forward.h"
#include "shard/log.h"
#include "shard/kernels/read_bandwidth.h"
#include "shard/format/model_file.h"

namespace tandem::bench {
namespace {

struct DecodeOptions {
  std::string model, work_dir = "bench-models", json, types = "q4_0,q8_0,q4_k,f16", threads = "1,2";
  SynthOptions shape;
  std::string batch_rows = "1,2,4,8,16";
  int prompt_tokens = 64, gen_tokens = 32, reps = 3, ctx_test = 2048;
};

double seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Runner {
  const ShardModel& m;
  KvCache& kv;
  LocalCollectives coll;
  ForwardScratch s;
  std::vector<float> hidden, logits;

  int32_t step(ThreadPool& pool, std::span<const int32_t> toks, int pos0) {
    SeqChunk c{0, pos0, toks, false};
    auto st = forward_stage(m, kv, std::span<const SeqChunk>(&c, 1), coll, pool, s, hidden, &logits);
    if (!st) throw std::runtime_error(st.error().message);
    int best = 0;
    for (int j = 1; j < static_cast<int>(logits.size()); ++j)
      if (logits[j] > logits[best]) best = j;
    return best;
  }
  // n decode steps of `rows` sequences at once (slots 0..rows-1, one token each, every slot at
  // position pos + i): what batching and a verification block cost against one row. Returns seconds.
  double batch_steps(ThreadPool& pool, int rows, int pos, int n) {
    std::vector<int32_t> toks(static_cast<size_t>(rows), 1);
    std::vector<SeqChunk> chunks(static_cast<size_t>(rows));
    const double t0 = seconds();
    for (int i = 0; i < n; ++i) {
      for (int r = 0; r < rows; ++r) chunks[r] = SeqChunk{r, pos + i, std::span<const int32_t>(&toks[r], 1), false};
      auto st = forward_stage(m, kv, chunks, coll, pool, s, hidden, &logits);
      if (!st) throw std::runtime_error(st.error().message);
      for (int r = 0; r < rows; ++r) {
        const float* l = logits.data() + static_cast<size_t>(r) * (logits.size() / rows);
        toks[r] = static_cast<int32_t>(std::max_element(l, l + logits.size() / rows) - l);
      }
    }
    return seconds() - t0;
  }
  // Greedy decode of n tokens from position pos; returns seconds.
  double decode(ThreadPool& pool, int32_t tok, int pos, int n) {
    const double t0 = seconds();
    for (int i = 0; i < n; ++i) tok = step(pool, std::span<const int32_t>(&tok, 1), pos + i);
    return seconds() - t0;
  }
};

int run_decode(DecodeOptions& o) {
  std::vector<std::string> models;
  std::vector<Json> rows;
  if (!o.model.empty()) {
    models.push_back(o.model);
  } else {
    for (const auto& t : split_list(o.types)) {
      auto wt = parse_weight_type(t);
      if (!wt) {
        spdlog::error("--types: unknown weight type '{}'", t);
        return 2;
      }
      SynthOptions so = o.shape;
      so.type = *wt;
      auto bm = ensure_synth(so, o.work_dir, false);
      if (!bm) {
        spdlog::error("{}", bm.error().message);
        return 1;
      }
      models.push_back(bm->target);
    }
  }
  std::vector<int> threads;
  for (const auto& t : split_list(o.threads)) threads.push_back(std::stoi(t));
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int t : threads) pools.push_back(std::make_unique<ThreadPool>(t));

  for (const auto& path : models) {
    auto f = open_model(path);
    if (!f) {
      spdlog::error("{}", f.error().message);
      return 1;
    }
    auto m = load_shard(*f, ShardSpec{});
    if (!m) {
      spdlog::error("{}", m.error().message);
      return 1;
    }
    const ModelConfig& c = f->config;
    const int ctx = std::max(o.prompt_tokens + o.gen_tokens, o.ctx_test + o.gen_tokens) + 1;
    std::vector<int> batch;
    for (const auto& b : split_list(o.batch_rows)) batch.push_back(std::max(1, std::stoi(b)));
    const int max_seqs = batch.empty() ? 1 : *std::max_element(batch.begin(), batch.end());
    auto kv = make_kv_cache({m->ranges.n_layers(), m->ranges.n_kv_heads(), c.head_dim, max_seqs, ctx, WeightType::F16});
    if (!kv) {
      spdlog::error("{}", kv.error().message);
      return 1;
    }
    Runner r{*m, *kv, {}, {}, {}, {}};
    std::mt19937 rng(1234);
    std::vector<int32_t> prompt(std::max(o.prompt_tokens, o.ctx_test));
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % c.n_vocab);
    const std::string wtype(name(f->tensors.empty() ? WeightType::F32 : f->require(tensor_name_layer(0, "ffn_down")).value()->type));
    spdlog::info("bench decode: {} ({}, {} layers, dim {}), {:.1f} MiB streamed per token", path, wtype, c.n_layers, c.dim,
                 m->bytes_per_token / 1048576.0);

    // The long-context decode reuses one prefill: rolling the cache back to ctx_test is O(1).
    if (o.ctx_test > 0) {
      spdlog::info("prefilling {} positions for the long-context measurement", o.ctx_test);
      for (int p = 0; p < o.ctx_test; p += 512) {
        const int n = std::min(512, o.ctx_test - p);
        r.step(*pools.back(), std::span<const int32_t>(prompt.data() + p, n), p);
      }
    }
    const size_t nt = threads.size();
    std::vector<std::vector<double>> pp(nt), dec(nt), dec_ctx(nt), bw(nt);
    // step_s[ti][k]: seconds per step of batch[k] rows (at the prompt's length, every slot).
    std::vector<std::vector<std::vector<double>>> step_s(nt, std::vector<std::vector<double>>(batch.size()));
    for (int rep = 0; rep < o.reps; ++rep) {
      for (size_t ti = 0; ti < nt; ++ti) {
        ThreadPool& pool = *pools[ti];
        bw[ti].push_back(measure_read_bandwidth_gbs(pool, size_t{256} << 20, 3));
        double t0 = seconds();
        const int32_t first = r.step(pool, std::span<const int32_t>(prompt.data(), o.prompt_tokens), 0);
        pp[ti].push_back(o.prompt_tokens / (seconds() - t0));
        dec[ti].push_back(o.gen_tokens / r.decode(pool, first, o.prompt_tokens, o.gen_tokens));
        if (o.ctx_test > 0) {
          kv->length[0] = o.ctx_test;
          dec_ctx[ti].push_back(o.gen_tokens / r.decode(pool, first, o.ctx_test, o.gen_tokens));
        }
        for (size_t k = 0; k < batch.size(); ++k) {
          for (int r = 0; r < batch[k]; ++r) kv->length[r] = o.prompt_tokens;
          step_s[ti][k].push_back(r.batch_steps(pool, batch[k], o.prompt_tokens, std::max(4, o.gen_tokens / 4)) /
                                  std::max(4, o.gen_tokens / 4));
        }
        kv->length[0] = o.prompt_tokens + o.gen_tokens;
        spdlog::info("  rep {}/{} threads {}: prompt {:.1f} tok/s, decode {:.2f} tok/s{}", rep + 1, o.reps, threads[ti],
                     pp[ti].back(), dec[ti].back(),
                     o.ctx_test > 0 ? fmt::format(", decode at {} ctx {:.2f} tok/s", o.ctx_test, dec_ctx[ti].back()) : "");
      }
    }
    for (size_t ti = 0; ti < nt; ++ti) {
      Json j;
      j["mode"] = "ar";
      j["layout"] = "tp1×pp1";
      j["threads"] = threads[ti];
      j["weight_type"] = wtype;
      j["model"] = path;
      j["shape"] = {{"dim", c.dim}, {"layers", c.n_layers}, {"heads", c.n_heads}, {"kv_heads", c.n_kv_heads},
                    {"ffn", c.ffn_dim}, {"vocab", c.n_vocab}};
      j["weight_bytes_per_token"] = m->bytes_per_token;
      j["prompt_tokens"] = o.prompt_tokens;
      j["prompt_tok_s"] = median(pp[ti]);
      j["decode_tok_s"] = median(dec[ti]);
      j["weight_gb_s"] = median(dec[ti]) * m->bytes_per_token / 1e9;
      j["mem_bw_gb_s"] = median(bw[ti]);
      j["roofline_pct"] = 100.0 * j["weight_gb_s"].get<double>() / j["mem_bw_gb_s"].get<double>();
      j["prompt_over_decode"] = median(pp[ti]) / median(dec[ti]);
      if (o.ctx_test > 0) {
        j["ctx_test"] = o.ctx_test;
        j["decode_tok_s_long_ctx"] = median(dec_ctx[ti]);
        j["long_ctx_slowdown_pct"] = 100.0 * (1.0 - median(dec_ctx[ti]) / median(dec[ti]));
      }
      if (!batch.empty()) {
        Json curve = Json::object();
        const double t1 = median(step_s[ti][0]);
        for (size_t k = 0; k < batch.size(); ++k) curve[std::to_string(batch[k])] = median(step_s[ti][k]) / t1;
        j["step_time_ratio"] = curve;  // T(rows)/T(first of --batch-rows), whole model
        j["step_ms"] = t1 * 1e3;
        std::string txt;
        for (size_t k = 1; k < batch.size(); ++k) txt += fmt::format("{}{}:{:.2f}", txt.empty() ? "" : " ", batch[k], curve[std::to_string(batch[k])].get<double>());
        j["t_rows_over_t1"] = txt;
      }
      if (ti > 0) j["speedup_vs_1st_threads"] = median(dec[ti]) / median(dec[0]);
      rows.push_back(std::move(j));
    }
  }
  print_table(rows, {{"weight_type", "type"}, {"threads", "threads"}, {"prompt_tok_s", "prompt tok/s"},
                     {"decode_tok_s", "decode tok/s"}, {"weight_gb_s", "weights GB/s"}, {"mem_bw_gb_s", "read BW GB/s"},
                     {"roofline_pct", "% of BW"}, {"prompt_over_decode", "prompt/decode"},
                     {"long_ctx_slowdown_pct", "slowdown @ctx %"}, {"speedup_vs_1st_threads", "× vs 1st threads"},
                     {"t_rows_over_t1", "T(rows)/T(1)"}});
  return write_json(o.json, "decode", rows) ? 0 : 1;
}

}  // namespace

void add_bench_decode(CLI::App& bench) {
  auto o = std::make_shared<DecodeOptions>();
  auto* c = bench.add_subcommand("decode", "Single-rank prompt and decode speed against the memory-bandwidth roofline");
  c->add_option("--model,-m", o->model, "Model to measure (default: synthetic models of --types at the given shape)");
  c->add_option("--types", o->types, "Weight types of the synthetic models, comma-separated");
  add_shape_options(*c, o->shape);
  c->add_option("--threads", o->threads, "Thread counts to compare, comma-separated");
  c->add_option("--prompt-tokens", o->prompt_tokens, "Prompt length for prompt processing")->check(CLI::Range(1, 8192));
  c->add_option("--gen-tokens", o->gen_tokens, "Decode steps per measurement")->check(CLI::Range(1, 8192));
  c->add_option("--ctx-test", o->ctx_test, "Also decode after this many context positions (0: skip)")->check(CLI::Range(0, 1 << 20));
  c->add_option("--batch-rows", o->batch_rows,
                 "Also time one step of this many sequences at once, comma-separated, first = reference "
                 "(T(rows)/T(1) of the whole model; empty: skip)");
  c->add_option("--reps", o->reps, "Repetitions (interleaved; medians reported)")->check(CLI::Range(1, 100));
  c->add_option("--work-dir", o->work_dir, "Where synthetic models are written and reused");
  c->add_option("--json", o->json, "Also write the results as JSON");
  c->callback([o] {
    const int rc = run_decode(*o);
    if (rc) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tandem::bench
