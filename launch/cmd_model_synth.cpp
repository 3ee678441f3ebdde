// `tandem model synth`: writes a synthetic GGUF of a supported family (and optionally its draft) —
// see shard/format/synth.h.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "launch/commands.h"
#include "shard/log.h"
#include "shard/format/synth.h"

namespace tandem::cli {
namespace {

constexpr const char* kVocabName = "ggml-vocab-llama-spm.gguf";

// The default vocabulary: $TANDEM_VOCAB, else the copy the build restores into
// <build>/testwork/vocab, else the shared test data beside the repository (<build>/bin/tandem ->
// ../../../shared/testdata/vocab). Empty when none exists.
std::string default_vocab() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("TANDEM_VOCAB"); env && *env) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const fs::path bin = exe.parent_path();
  for (const fs::path& p : {bin / ".." / "testwork" / "vocab" / kVocabName,
                            bin / ".." / ".." / ".." / "shared" / "testdata" / "vocab" / kVocabName})
    if (fs::is_regular_file(p, ec)) return fs::weakly_canonical(p, ec).string();
  return "";
}

struct SynthArgs {
  SynthOptions o;
  std::string type = "f32";
};

}  // namespace

void add_model_synth(CLI::App& parent) {
  auto args = std::make_shared<SynthArgs>();
  auto& o = args->o;
  auto* c = parent.add_subcommand(
      "synth",
      "Write a synthetic GGUF of one of the supported families (llama, qwen2, qwen3): deterministic "
      "pseudo-random weights (same seed and shape give a byte-identical file), a real tokenizer copied from a "
      "vocabulary GGUF, and optionally a matching draft model. Defaults to the TinyLlama-1.1B shape.");
  c->add_option("--out", o.out, "Output GGUF path")->required();
  c->add_option("--arch", o.arch,
                "Model family (general.architecture), with the tensors llama.cpp's converter writes for it: llama "
                "(adjacent-pair RoPE), qwen2 (q/k/v biases, NeoX RoPE), qwen3 (per-head q/k RMSNorm before RoPE, "
                "NeoX RoPE); mistral is accepted as llama")
      ->capture_default_str();
  c->add_flag("--tied", o.tied, "Tie the output head to token_embd (no output.weight, as Qwen2.5-0.5B..3B and "
                                "Qwen3-0.6B..4B ship)");
  c->add_option("--type", args->type, "Weight type of every matrix (norms stay f32): f32|f16|bf16|q8_0|q4_0|q5_0|q4_k|q5_k|q6_k")
      ->capture_default_str();
  c->add_option("--dim", o.dim, "Embedding length")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--layers", o.n_layers, "Number of transformer blocks")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--heads", o.n_heads, "Attention (query) heads; must divide --dim unless --head-dim is given")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--head-dim", o.head_dim,
                "Dimension of each head (0: --dim / --heads); another value is written as <arch>.attention.key_length, "
                "as Qwen3 files have it (e.g. dim 1024, 16 heads of 128)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--kv-heads", o.n_kv_heads, "Key/value heads (grouped-query attention); must divide --heads")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--ffn", o.ffn_dim, "Feed-forward length")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--ctx", o.ctx_len, "Context length written to the metadata")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--vocab-from", o.vocab_from,
                "GGUF whose tokenizer.* metadata is copied (any GGUF with a tokenizer); default: $TANDEM_VOCAB, else "
                "the build's restored ggml-vocab-llama-spm.gguf, else ../shared/testdata/vocab beside the repository");
  c->add_option("--seed", o.seed, "Seed of the weight generator")->capture_default_str();
  c->add_option("--residual-scale", o.residual_scale,
                "How far the deep model departs from its shallow prefix: multiplies the residual-branch weights "
                "(attn_output, ffn_down) of every layer at index >= --draft-layers. 0 makes those layers no-ops (a "
                "draft of the first --draft-layers layers then predicts the target exactly); larger values lower the "
                "draft/target agreement. Measured for the default shape with a 1-layer draft: 0 / 0.05 / 0.1 / 0.2 / 1 "
                "give greedy agreement 100% / 73% / 52% / 22% / 1% (sampled acceptance 100% / 79% / 59% / 30% / 1%)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--draft", o.draft_out,
                "Also write a draft GGUF: the target's first --draft-layers layers with the same embeddings, output "
                "norm, head and vocabulary");
  c->add_option("--draft-layers", o.draft_layers,
                "Layers of the draft, and the index from which --residual-scale applies in the target")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--threads", o.threads, "Generator threads (0 = all cores); the output does not depend on it")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);

  c->callback([args] {
    SynthOptions o = args->o;
    auto t = parse_weight_type(args->type);
    if (!t) {
      spdlog::error("model synth: --type '{}' is not one of f32, f16, bf16, q8_0, q4_0, q5_0, q4_k, q5_k, q6_k", args->type);
      fail(2);
    }
    o.type = *t;
    if (o.vocab_from.empty()) {
      o.vocab_from = default_vocab();
      if (o.vocab_from.empty()) {
        spdlog::error("model synth: no vocabulary file found ($TANDEM_VOCAB is unset and no {} beside the build): "
                      "pass --vocab-from F (any GGUF with tokenizer.* keys)",
                      kVocabName);
        fail(2);
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto st = write_synth_model(o);
    if (!st) {
      const std::string& msg = st.error().message;  // starts with "synth: "
      const bool about_vocab = msg.find("vocabulary") != std::string::npos || msg.find("tokenizer") != std::string::npos;
      spdlog::error("model {}{}", msg,
                    args->o.vocab_from.empty() && about_vocab ? " (the default vocabulary was used: pass --vocab-from F)"
                                                              : "");
      fail(1);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("model synth: wrote {}{}{} in {:.1f} s", o.out, o.draft_out.empty() ? "" : " and ", o.draft_out, s);
  });
}

}  // namespace tandem::cli
