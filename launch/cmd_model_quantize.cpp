// `tandem model quantize`: convert any loadable model to a GGUF of one weight type.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "launch/commands.h"
#include "shard/log.h"
#include "shard/format/model_file.h"
#include "shard/format/model_quantize.h"

namespace tandem::cli {
namespace {

struct QuantizeArgs {
  std::string in, out, type, tokenizer;
  int threads = 0;
};

void run_quantize(const QuantizeArgs& a) {
  auto t = parse_weight_type(a.type);
  if (!t) {
    spdlog::error("model quantize: --type '{}' is not one of f32, f16, bf16, q8_0, q4_0, q5_0, q4_k, q5_k, q6_k", a.type);
    fail(2);
  }
  std::error_code ec;
  if (std::filesystem::equivalent(a.in, a.out, ec)) {
    spdlog::error("model quantize: OUT {} is the input file; choose another path", a.out);
    fail(2);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto m = open_model(a.in, a.tokenizer);
  if (!m) {
    spdlog::error("model quantize: {}", m.error().message);
    fail(1);
  }
  auto st = quantize_model(*m, a.out, *t, a.threads);
  if (!st) {
    spdlog::error("model quantize: {}", st.error().message);
    fail(1);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("model quantize: wrote {} ({:.2f} GB) in {:.1f} s", a.out,
               std::filesystem::file_size(a.out, ec) / 1e9, s);
}

}  // namespace

void add_model_quantize(CLI::App& parent) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* c = parent.add_subcommand(
      "quantize",
      "Convert a model (GGUF or llama2.c) to a GGUF whose matrices are all of one weight type; norms stay f32, "
      "metadata and tokenizer are kept");
  c->add_option("in", a->in, "Input model (GGUF or llama2.c checkpoint)")->required();
  c->add_option("out", a->out, "Output GGUF path")->required();
  c->add_option("--type", a->type, "Target weight type: f32|f16|bf16|q8_0|q4_0|q5_0|q4_k|q5_k|q6_k")->required();
  c->add_option("--tokenizer", a->tokenizer,
                "Tokenizer for a llama2.c input (default: tok<vocab>.bin or tokenizer.bin beside it)");
  c->add_option("--threads", a->threads, "Conversion threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->callback([a] { run_quantize(*a); });
}

}  // namespace tandem::cli
