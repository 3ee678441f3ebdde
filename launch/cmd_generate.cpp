// `tandem generate`: one prompt through the engine, on one rank or across an MPI job, streaming
// the text to stdout as tokens arrive; rates and (with --verbose) speculation counters on stderr.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "decode/engine.h"
#include "launch/chat_input.h"
#include "decode/worker_rank.h"
#include "dist/mpi_runtime.h"
#include "launch/commands.h"
#include "launch/run_options.h"
#include "shard/log.h"
#include "shard/tokenizer/chat_template.h"

namespace tandem::cli {
namespace {

struct GenerateOptions {
  RunOptions run;
  ChatFlags chat;
  std::string prompt, prompt_file, ids_out;
  bool no_bos = false, verbose = false;
};

// --messages: the conversation rendered with the model's (or --chat-template's) template, then
// tokenized as transformers does (special-token texts are tokens, no BOS added).
Result<std::vector<int32_t>> chat_prompt(const GenerateOptions& o, const Cluster& c, const Tokenizer& tok) {
  auto src = resolve_chat_template(c.target_file, o.chat.chat_template);
  if (!src) return src.error();
  auto tmpl = ChatTemplate::parse(*src);
  if (!tmpl) return tmpl.error();
  ChatOptions opt = chat_options_for(tok.vocab());
  auto in = read_chat_input(o.chat, opt);
  if (!in) return in.error();
  auto text = tmpl->render(in->messages, opt);
  if (!text) return text.error();
  spdlog::info("chat prompt: {} messages rendered to {} bytes", in->messages.size(), text->size());
  return encode_chat_prompt(tok, *text);
}

int generate(GenerateOptions& o) {
  auto rt = mpi_start(nullptr, nullptr);
  if (!rt) {
    spdlog::error("{}", rt.error().message);
    return 1;
  }
  auto req_or = o.run.request();
  auto copts = o.run.cluster();
  if (!req_or || !copts) {
    spdlog::error("{}", !req_or ? req_or.error().message : copts.error().message);
    return 2;
  }
  auto cluster = start_cluster(*copts, (*rt)->rank, (*rt)->size);
  if (!cluster) {
    spdlog::error("{}", cluster.error().message);
    return 1;
  }
  Cluster& c = **cluster;
  if (!c.role.coordinator()) {
    run_worker_rank(c);
    return 0;
  }
  auto tok = Tokenizer::create(c.target_file.vocab);
  if (!tok) {
    spdlog::error("{}: {}", o.run.model, tok.error().message);
    c.target->shutdown();
    return 1;
  }
  auto stop_workers = [&] {
    c.target->shutdown();
    if (c.remote_draft()) remote_channel(c.comms.heads)->shutdown();
  };
  std::string text = o.prompt;
  if (!o.prompt_file.empty()) {
    std::ifstream in(o.prompt_file, std::ios::binary);
    if (!in) {
      spdlog::error("--prompt-file {}: cannot read", o.prompt_file);
      stop_workers();
      return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  GenerationRequest req = *req_or;
  req.id = "generate";
  if (!o.chat.messages.empty()) {
    auto ids = chat_prompt(o, c, *tok);
    if (!ids) {
      spdlog::error("{}", ids.error().message);
      stop_workers();
      return 2;
    }
    req.prompt = std::move(*ids);
  } else {
    req.prompt = tok->encode(text, !o.no_bos);
  }
  Engine engine(c, *tok, o.run.engine());
  if (o.run.speculation == "auto" && engine.has_drafter()) {
    if (auto st = engine.warmup(); !st) spdlog::warn("start-up profile failed: {}", st.error().message);
  }
  auto stream = engine.submit(req);
  if (!stream) {
    spdlog::error("{}", stream.error().message);
    engine.shutdown_groups();
    return 2;
  }
  // The engine thread is this one (it owns MPI); a printer thread streams the text.
  GenerationEvent last;
  std::vector<int32_t> ids;
  std::thread printer([&] {
    while (true) {
      auto e = (*stream)->next(std::chrono::milliseconds(200));
      if (!e) continue;
      std::fwrite(e->text.data(), 1, e->text.size(), stdout);
      std::fflush(stdout);
      ids.insert(ids.end(), e->ids.begin(), e->ids.end());
      if (e->final) {
        last = std::move(*e);
        return;
      }
    }
  });
  auto st = engine.run_until_idle();
  printer.join();
  std::fputc('\n', stdout);
  engine.shutdown_groups();
  if (!st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  const Usage& u = last.usage;
  const double gen_s = (u.total_ms - u.ttft_ms) / 1e3;
  spdlog::info("prompt: {} tokens in {:.2f} ms ({:.1f} tok/s); generation: {} tokens, {:.2f} tok/s; finish: {}",
               u.prompt_tokens, u.ttft_ms, u.prompt_tokens / std::max(1e-9, u.ttft_ms / 1e3), u.completion_tokens,
               u.completion_tokens > 1 ? (u.completion_tokens - 1) / std::max(1e-9, gen_s) : 0.0, to_string(last.reason));
  if (o.verbose) print_counters(engine.info(), u);
  if (!o.ids_out.empty()) {
    std::ofstream f(o.ids_out);
    for (size_t i = 0; i < ids.size(); ++i) f << (i ? " " : "") << ids[i];
    f << "\n";
  }
  return last.reason == FinishReason::kError ? 1 : 0;
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* c = app.add_subcommand("generate", "Generate text from a prompt (one rank, or a layout across an MPI job)");
  auto* p = c->add_option("--prompt", o->prompt, "Prompt text");
  auto* pf = c->add_option("--prompt-file", o->prompt_file, "Read the prompt from a file")->excludes(p)->check(CLI::ExistingFile);
  auto* nb = c->add_flag("--no-bos", o->no_bos, "Do not prepend the BOS token");
  auto* m = add_chat_flags(*c, o->chat, /*required=*/false);
  m->excludes(p)->excludes(pf)->excludes(nb);
  c->add_flag("--verbose,-v", o->verbose, "Print speculation counters at the end");
  c->add_option("--ids-out", o->ids_out, "Also write the generated token ids to this file");
  add_run_options(*c, o->run, /*server=*/false);
  c->callback([o] {
    const int rc = generate(*o);
    if (rc != 0) fail(rc);
  });
}

}  // namespace tandem::cli
