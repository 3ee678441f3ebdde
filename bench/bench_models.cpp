#include "bench/bench_models.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "shard/log.h"

namespace tandem::bench {

namespace fs = std::filesystem;

void add_shape_options(CLI::App& c, SynthOptions& o) {
  c.add_option("--dim", o.dim, "Synthetic shape: embedding size");
  c.add_option("--layers", o.n_layers, "Synthetic shape: layers");
  c.add_option("--heads", o.n_heads, "Synthetic shape: attention heads");
  c.add_option("--kv-heads", o.n_kv_heads, "Synthetic shape: KV heads");
  c.add_option("--ffn", o.ffn_dim, "Synthetic shape: feed-forward size");
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  for (size_t a = 0; a <= s.size();) {
    const size_t b = std::min(s.find(',', a), s.size());
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

std::string default_vocab() {
  if (const char* v = std::getenv("TANDEM_VOCAB")) return v;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (const fs::path& p : {exe.parent_path() / "../testwork/vocab/ggml-vocab-llama-spm.gguf",
                            exe.parent_path() / "../../../shared/testdata/vocab/ggml-vocab-llama-spm.gguf"})
    if (fs::exists(p, ec)) return fs::weakly_canonical(p, ec).string();
  return "";
}

Result<BenchModel> ensure_synth(SynthOptions o, const std::string& work_dir, bool with_draft) {
  std::error_code ec;
  fs::create_directories(work_dir, ec);
  if (o.vocab_from.empty()) o.vocab_from = default_vocab();
  if (o.vocab_from.empty()) return make_error("no vocabulary for synthetic models: set $TANDEM_VOCAB or pass --vocab-from");
  const std::string stem = fmt::format("{}/synth-d{}-l{}-h{}-kv{}-f{}-{}-s{}-r{}", work_dir, o.dim, o.n_layers, o.n_heads,
                                       o.n_kv_heads, o.ffn_dim, name(o.type), o.seed, o.residual_scale);
  BenchModel m;
  m.target = stem + ".gguf";
  if (with_draft) m.draft = fmt::format("{}-draft{}.gguf", stem, o.draft_layers);
  const bool have = fs::exists(m.target, ec) && (!with_draft || fs::exists(m.draft, ec));
  if (have) return m;
  o.out = m.target + ".tmp";
  o.draft_out = with_draft ? m.draft + ".tmp" : "";
  spdlog::info("writing synthetic model {}{}", m.target, with_draft ? " and its draft" : "");
  TANDEM_TRY(write_synth_model(o));
  fs::rename(o.out, m.target, ec);
  if (with_draft) fs::rename(o.draft_out, m.draft, ec);
  if (ec) return make_error("cannot move {} into place: {}", o.out, ec.message());
  return m;
}

}  // namespace tandem::bench
