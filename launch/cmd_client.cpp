// `tandem client …`: the bundled gRPC client — generate (streams text to stdout), tokenize,
// detokenize, info, health (scripts poll it), bench (latency and throughput under concurrency).
// Exit codes: 0 success; 2 the server rejected the request as invalid; 3 the server is busy or
// unavailable (RESOURCE_EXHAUSTED, UNAVAILABLE, not SERVING); 1 anything else.
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "launch/chat_input.h"
#include "launch/commands.h"
#include "rpc/client_bench.h"
#include "rpc/convert.h"
#include "rpc/grpc_client.h"
#include "rpc/security.h"
#include "shard/log.h"

namespace tandem::cli {
namespace {

using rpc::Client;
namespace v1 = tandem::v1;

int exit_code(const grpc::Status& st) {
  switch (st.error_code()) {
    case grpc::StatusCode::OK: return 0;
    case grpc::StatusCode::INVALID_ARGUMENT: return 2;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNAVAILABLE: return 3;
    default: return 1;
  }
}

void check(const grpc::Status& st, const std::string& addr) {
  if (st.ok()) return;
  spdlog::error("{}: {}: {}", addr, rpc::code_name(st.error_code()), st.error_message());
  fail(exit_code(st));
}

// Where the server is and how to reach it: shared by every subcommand (the flags go before or after
// the subcommand name).
struct Conn {
  std::string addr = "127.0.0.1:50051";
  std::string tls_ca, tls_cert, tls_key, api_key;
  bool tls = false;
};

rpc::ClientSecurity security(const Conn& c) {
  rpc::ClientSecurity s;
  s.tls = c.tls || !c.tls_ca.empty() || !c.tls_cert.empty();
  s.api_key = c.api_key;
  if (s.api_key.empty())
    if (const char* k = std::getenv("TANDEM_API_KEY")) s.api_key = k;
  auto read = [](const std::string& path, const char* flag, std::string& out) {
    if (path.empty()) return;
    auto t = rpc::read_file_text(path, flag);
    if (!t) {
      spdlog::error("{}", t.error().message);
      fail(2);
    }
    out = *t;
  };
  read(c.tls_ca, "--tls-ca", s.ca_pem);
  read(c.tls_cert, "--tls-cert", s.cert_pem);
  read(c.tls_key, "--tls-key", s.key_pem);
  if (s.cert_pem.empty() != s.key_pem.empty()) {
    spdlog::error("--tls-cert and --tls-key go together (a client certificate for mutual TLS)");
    fail(2);
  }
  return s;
}

std::chrono::milliseconds seconds(double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1e3)); }

Result<std::vector<int32_t>> parse_ids(const std::string& s, const char* what) {
  std::vector<int32_t> ids;
  std::istringstream in(s);
  std::string w;
  while (in >> w) {
    try {
      size_t used = 0;
      const long v = std::stol(w, &used);
      if (used != w.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument("");
      ids.push_back(static_cast<int32_t>(v));
    } catch (...) {
      return make_error("{}: '{}' is not a token id (expected integers separated by spaces)", what, w);
    }
  }
  return ids;
}

std::string read_all(std::istream& in) { return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}; }

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opt;
  opt.add_whitespace = true;
  opt.always_print_primitive_fields = true;
  opt.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opt);
  return out;
}

v1::Speculation speculation_of(const std::string& s) { return rpc::to_proto(*parse_spec_mode(s)); }

// ---- generate ----------------------------------------------------------------------------------

struct GenerateCli {
  std::string addr, prompt, prompt_file, ids, ids_out, speculation = "auto";
  rpc::ClientSecurity security;
  ChatFlags chat;
  bool no_bos = false, quiet = false, logprobs = false, ignore_eos = false, no_generation_prompt = false;
  int max_tokens = 0, top_k = 0, penalty_last_n = 64, draft_len = 0;
  float temperature = 0, top_p = 1, min_p = 0, repeat_penalty = 1, presence_penalty = 0, frequency_penalty = 0;
  uint64_t seed = 0;
  double timeout = 0;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_ids;
};

void run_generate(const GenerateCli& g, CLI::App& cmd) {
  v1::GenerateRequest req;
  if (!g.chat.messages.empty()) {
    auto files = read_chat_files(g.chat);
    if (!files) {
      spdlog::error("{}", files.error().message);
      fail(2);
    }
    *req.mutable_chat() = to_chat_prompt(*files, !g.no_generation_prompt);
  } else if (!g.ids.empty()) {
    auto ids = parse_ids(g.ids, "--ids");
    if (!ids) {
      spdlog::error("{}", ids.error().message);
      fail(2);
    }
    req.mutable_ids()->mutable_ids()->Add(ids->begin(), ids->end());
  } else if (!g.prompt_file.empty()) {
    std::ifstream in(g.prompt_file, std::ios::binary);
    if (!in) {
      spdlog::error("--prompt-file {}: cannot read", g.prompt_file);
      fail(2);
    }
    req.set_text(read_all(in));
  } else {
    req.set_text(g.prompt);
  }
  if (g.no_bos) req.set_add_bos(false);
  // Only what the user gave is sent; the server applies the documented defaults to the rest.
  auto given = [&](const char* name) { return cmd.count(name) > 0; };
  if (given("--max-tokens")) req.set_max_tokens(g.max_tokens);
  if (given("--temperature")) req.set_temperature(g.temperature);
  if (given("--top-k")) req.set_top_k(g.top_k);
  if (given("--top-p")) req.set_top_p(g.top_p);
  if (given("--min-p")) req.set_min_p(g.min_p);
  if (given("--repeat-penalty")) req.set_repetition_penalty(g.repeat_penalty);
  if (given("--presence-penalty")) req.set_presence_penalty(g.presence_penalty);
  if (given("--frequency-penalty")) req.set_frequency_penalty(g.frequency_penalty);
  if (given("--penalty-last-n")) req.set_penalty_last_n(g.penalty_last_n);
  if (given("--seed")) req.set_seed(g.seed);
  if (given("--draft-len")) req.set_draft_len(g.draft_len);
  for (const auto& s : g.stop) req.add_stop(s);
  for (int32_t id : g.stop_ids) req.add_stop_token_ids(id);
  req.set_ignore_eos(g.ignore_eos);
  req.set_logprobs(g.logprobs);
  req.set_speculation(speculation_of(g.speculation));

  Client client(g.addr, g.security);
  rpc::GenerateResult res;
  const grpc::Status st = client.generate(
      req, res,
      [](const v1::GenerateResponse& m) {
        std::fwrite(m.text().data(), 1, m.text().size(), stdout);
        std::fflush(stdout);
        return true;
      },
      seconds(g.timeout));
  if (!res.text.empty()) std::fputc('\n', stdout);
  std::fflush(stdout);  // the text before the usage line on stderr
  check(st, g.addr);
  if (!g.ids_out.empty()) {
    std::ofstream f(g.ids_out);
    for (size_t i = 0; i < res.ids.size(); ++i) f << (i ? " " : "") << res.ids[i];
    f << "\n";
    if (!f) {
      spdlog::error("--ids-out {}: cannot write", g.ids_out);
      fail(1);
    }
  }
  if (g.logprobs && !g.quiet) {
    std::string lp;
    for (size_t i = 0; i < res.ids.size() && i < res.logprobs.size(); ++i) lp += fmt::format(" {}:{:.3f}", res.ids[i], res.logprobs[i]);
    spdlog::info("logprobs:{}", lp);
  }
  if (!res.has_final) {
    spdlog::error("{}: the stream ended without a final message", g.addr);
    fail(1);
  }
  const auto& u = res.final.usage();
  const auto reason = rpc::from_proto(res.final.finish_reason());
  if (!g.quiet) {
    const double gen_s = (res.total_ms - res.ttft_ms) / 1e3;
    spdlog::info("finish: {}; prompt {} tokens, completion {} tokens; TTFT {:.1f} ms (server {:.1f} ms, queued {:.1f} ms); "
                 "{:.2f} tok/s after the first; total {:.1f} ms",
                 to_string(reason), u.prompt_tokens(), u.completion_tokens(), res.ttft_ms, u.time_to_first_token_ms(),
                 u.queue_ms(), u.completion_tokens() > 1 ? (u.completion_tokens() - 1) / std::max(1e-9, gen_s) : 0.0,
                 res.total_ms);
    if (u.drafted_tokens() > 0)
      spdlog::info("speculation: {} draft tokens checked, {} accepted ({:.3f})", u.drafted_tokens(), u.accepted_tokens(),
                   double(u.accepted_tokens()) / u.drafted_tokens());
  }
  if (reason == FinishReason::kError) {
    spdlog::error("the server failed the request: {}", res.final.error());
    fail(1);
  }
}

void add_generate(CLI::App& client, Conn& conn) {
  auto g = std::make_shared<GenerateCli>();
  auto* c = client.add_subcommand("generate", "Stream a generation to stdout (usage on stderr at the end)");
  auto* p = c->add_option("--prompt", g->prompt, "Prompt text");
  auto* pf = c->add_option("--prompt-file", g->prompt_file, "Read the prompt text from a file")->check(CLI::ExistingFile);
  auto* ids = c->add_option("--ids", g->ids, "Prompt as token ids, e.g. \"1 403 407\" (used as given: no BOS added)");
  p->excludes(pf)->excludes(ids);
  pf->excludes(ids);
  auto* nb = c->add_flag("--no-bos", g->no_bos, "Do not prepend BOS to a text prompt");
  auto* m = add_chat_flags(*c, g->chat, /*required=*/false, /*with_template=*/false);
  m->description("Chat messages (JSON: an OpenAI-style array, or an object with \"messages\" and \"tools\"), "
                 "rendered by the server with its chat template");
  m->excludes(p)->excludes(pf)->excludes(ids)->excludes(nb);
  c->add_flag("--no-generation-prompt", g->no_generation_prompt,
              "With --messages: do not append the opening of the assistant's turn")
      ->needs(m);
  c->add_option("--max-tokens,-n", g->max_tokens, "Tokens to generate (server default: 128, within the context)");
  c->add_option("--temperature", g->temperature, "Sampling temperature (0: greedy)");
  c->add_option("--top-k", g->top_k, "Keep the k most likely tokens (0: off)");
  c->add_option("--top-p", g->top_p, "Nucleus sampling mass in (0, 1] (1: off)");
  c->add_option("--min-p", g->min_p, "Drop tokens below min-p × the top probability (0: off)");
  c->add_option("--repeat-penalty", g->repeat_penalty, "Repetition penalty (1: off)");
  c->add_option("--presence-penalty", g->presence_penalty, "Presence penalty (0: off)");
  c->add_option("--frequency-penalty", g->frequency_penalty, "Frequency penalty (0: off)");
  c->add_option("--penalty-last-n", g->penalty_last_n, "Window of the penalties (-1: all)");
  c->add_option("--seed", g->seed, "Seed of every random draw of the request");
  c->add_option("--stop", g->stop, "Stop string (repeatable); not included in the output");
  c->add_option("--stop-id", g->stop_ids, "Stop token id (repeatable)");
  c->add_flag("--ignore-eos", g->ignore_eos, "Keep generating after end-of-generation tokens");
  c->add_flag("--logprobs", g->logprobs, "Ask for per-token log-probabilities (printed on stderr)");
  c->add_option("--speculation", g->speculation, "auto | off | sd | pearl")->check(CLI::IsMember({"auto", "off", "sd", "pearl"}));
  c->add_option("--draft-len", g->draft_len, "Draft tokens per block (0: the server's setting)");
  c->add_option("--ids-out", g->ids_out, "Also write the generated token ids to this file");
  c->add_option("--timeout", g->timeout, "Give up after this many seconds (0: never)")->check(CLI::Range(0.0, 1e6));
  c->add_flag("--quiet,-q", g->quiet, "No usage line on stderr");
  c->callback([g, c, &conn] {
    g->addr = conn.addr;
    g->security = security(conn);
    run_generate(*g, *c);
  });
}

// ---- chat (render only) ------------------------------------------------------------------------

void add_chat(CLI::App& client, Conn& conn) {
  struct Opts {
    ChatFlags chat;
    bool no_generation_prompt = false, ids = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = client.add_subcommand(
      "chat", "Render a conversation with the server's chat template and print the prompt exactly (no generation)");
  add_chat_flags(*c, o->chat, /*required=*/true, /*with_template=*/false);
  c->add_flag("--no-generation-prompt", o->no_generation_prompt, "Do not append the opening of the assistant's turn");
  c->add_flag("--ids", o->ids, "Print the prompt's token ids instead of its text");
  c->callback([o, &conn] {
    auto files = read_chat_files(o->chat);
    if (!files) {
      spdlog::error("{}", files.error().message);
      fail(2);
    }
    v1::RenderChatResponse resp;
    check(Client(conn.addr, security(conn)).render_chat(to_chat_prompt(*files, !o->no_generation_prompt), resp), conn.addr);
    if (o->ids) {
      std::string line;
      for (int i = 0; i < resp.ids_size(); ++i) line += fmt::format("{}{}", i ? " " : "", resp.ids(i));
      fmt::print("{}\n", line);
      return;
    }
    std::fwrite(resp.text().data(), 1, resp.text().size(), stdout);
    std::fflush(stdout);
  });
}

// ---- tokenize / detokenize ---------------------------------------------------------------------

void add_tokenize(CLI::App& client, Conn& conn) {
  struct Opts {
    std::string text;
    bool no_bos = false, parse_special = false, pieces = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = client.add_subcommand("tokenize", "Token ids of a text (from --text or stdin) with the server's tokenizer");
  c->add_option("--text", o->text, "Text to tokenize (default: read stdin)");
  c->add_flag("--no-bos", o->no_bos, "Do not prepend BOS");
  c->add_flag("--parse-special", o->parse_special, "Recognise special-token texts such as <s>");
  c->add_flag("--pieces", o->pieces, "Print one token per line: id and its text");
  c->callback([o, c, &conn] {
    v1::TokenizeRequest req;
    req.set_text(c->count("--text") ? o->text : read_all(std::cin));
    req.set_add_bos(!o->no_bos);
    req.set_parse_special(o->parse_special);
    v1::TokenizeResponse resp;
    check(Client(conn.addr, security(conn)).tokenize(req, resp), conn.addr);
    if (o->pieces) {
      for (int i = 0; i < resp.ids_size(); ++i) fmt::print("{}\t{}\n", resp.ids(i), resp.pieces(i));
      return;
    }
    std::string line;
    for (int i = 0; i < resp.ids_size(); ++i) line += fmt::format("{}{}", i ? " " : "", resp.ids(i));
    fmt::print("{}\n", line);
  });
}

void add_detokenize(CLI::App& client, Conn& conn) {
  struct Opts {
    std::string ids;
    bool render_special = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = client.add_subcommand("detokenize", "Text of token ids (from --ids or stdin) with the server's tokenizer");
  c->add_option("--ids", o->ids, "Token ids separated by spaces (default: read stdin)");
  c->add_flag("--render-special", o->render_special, "Show control tokens such as BOS/EOS by their text");
  c->callback([o, c, &conn] {
    auto ids = parse_ids(c->count("--ids") ? o->ids : read_all(std::cin), "--ids");
    if (!ids) {
      spdlog::error("{}", ids.error().message);
      fail(2);
    }
    v1::DetokenizeRequest req;
    req.mutable_ids()->Add(ids->begin(), ids->end());
    req.set_render_special(o->render_special);
    v1::DetokenizeResponse resp;
    check(Client(conn.addr, security(conn)).detokenize(req, resp), conn.addr);
    fmt::print("{}\n", resp.text());
  });
}

// ---- info / health -----------------------------------------------------------------------------

void add_info(CLI::App& client, Conn& conn) {
  auto json = std::make_shared<bool>(false);
  auto* c = client.add_subcommand("info", "The served model, the layout and the server's live counters");
  c->add_flag("--json", *json, "Print {\"model\": ModelInfo, \"server\": ServerInfo} as JSON");
  c->callback([json, &conn] {
    Client cl(conn.addr, security(conn));
    v1::ServerInfo s;
    check(cl.server_info(s), conn.addr);
    v1::ModelInfo m;
    const grpc::Status mst = cl.model_info(m);
    if (!mst.ok() && mst.error_code() != grpc::StatusCode::UNAVAILABLE) check(mst, conn.addr);
    if (*json) {
      fmt::print("{{\n\"model\": {},\n\"server\": {}}}\n", mst.ok() ? to_json(m) : "null", to_json(s));
      return;
    }
    if (mst.ok()) {
      const auto& k = m.config();
      fmt::print("model     {} ({}, {}, {:.1f} MiB): dim {}, {} layers, {} heads / {} kv heads, ffn {}, vocab {}\n",
                 m.path(), m.format(), m.weight_type(), m.weight_bytes() / 1048576.0, k.dim(), k.n_layers(), k.n_heads(),
                 k.n_kv_heads(), k.ffn_dim(), m.vocab_size());
      fmt::print("context   {} positions per sequence; tokenizer {} (bos {}, eos {})\n", m.context_size(), m.tokenizer(),
                 m.bos_id(), m.eos_id());
      const auto& d = m.drafter();
      fmt::print("drafter   {}{}{}\n", d.kind(), d.path().empty() ? "" : " " + d.path(),
                 d.draft_tp() > 0 ? fmt::format(" on {} draft rank(s)", d.draft_tp()) : std::string(" on rank 0"));
    }
    fmt::print("server    tandem {} ({}), up {:.1f} s, {}{}\n", s.version(), s.api_version(), s.uptime_s(),
               s.ready() ? "ready" : "not ready", s.draining() ? ", draining" : "");
    fmt::print("layout    {} ({} ranks)\n", s.layout().description(), s.layout().world_size());
    std::string hosts;
    for (const auto& r : s.layout().ranks())
      hosts += fmt::format("{}{} {}{} on {}", hosts.empty() ? "" : ", ", r.group(), r.world_rank(),
                           r.coordinator() ? " (coordinator)" : "", r.host().empty() ? "?" : r.host());
    if (!hosts.empty()) fmt::print("ranks     {}\n", hosts);
    fmt::print("load      {} active, {} queued, {} free of {} slots; queue limit {}; {} open streams\n", s.active(),
               s.queued(), s.free_slots(), s.max_seqs(), s.max_queue(), s.streams());
    const auto& n = s.counters();
    fmt::print("requests  {} admitted, {} completed, {} cancelled, {} failed; rejected: {} invalid, {} queue full, {} "
               "unavailable\n",
               n.admitted(), n.completed(), n.cancelled(), n.failed(), n.rejected_invalid(), n.rejected_queue_full(),
               n.rejected_unavailable());
    fmt::print("decode    {} tokens, {} target steps ({:.2f} s busy); drafts: {} checked, {} accepted, waited {:.3f} s\n",
               n.tokens_generated(), n.target_steps(), n.target_busy_s(), n.drafted_tokens(), n.accepted_tokens(),
               n.wait_for_draft_s());
    const auto& sp = s.speculation();
    fmt::print("spec      configured {}, auto -> {} ({})\n", v1::Speculation_Name(sp.configured()),
               v1::Speculation_Name(sp.auto_mode()), sp.auto_reason());
  });
}

void add_health(CLI::App& client, Conn& conn) {
  struct Opts {
    double wait = 0;
    std::string service;
  };
  auto o = std::make_shared<Opts>();
  auto* c = client.add_subcommand("health", "grpc.health.v1 status: prints SERVING / NOT_SERVING / …; exit 0 only when SERVING");
  c->add_option("--wait", o->wait, "Poll until SERVING for up to this many seconds")->check(CLI::Range(0.0, 1e6));
  c->add_option("--service", o->service, "Service to ask about (default: the whole server)");
  c->callback([o, &conn] {
    Client cl(conn.addr, security(conn));
    const rpc::Health h = o->wait > 0 ? cl.wait_until_serving(seconds(o->wait)) : cl.health(std::chrono::seconds(5), o->service);
    fmt::print("{}\n", rpc::to_string(h));
    std::fflush(stdout);
    if (h != rpc::Health::Serving) fail(3);
  });
}

// ---- bench -------------------------------------------------------------------------------------

void add_bench(CLI::App& client, Conn& conn) {
  struct Opts {
    rpc::BenchOptions b;
    std::string prompts_file, json, speculation = "auto", http_url;
    bool no_ignore_eos = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = client.add_subcommand("bench", "Send N requests at concurrency C; report TTFT, TPOT, ITL, E2E latency and throughput");
  c->add_option("--requests,-n", o->b.requests, "Requests to send")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  c->add_option("--concurrency,-c", o->b.concurrency, "Requests in flight at once")->check(CLI::Range(1, 4096))->capture_default_str();
  c->add_option("--max-tokens", o->b.max_tokens, "Tokens per request")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  c->add_option("--prompts-file", o->prompts_file, "Prompts, one per line (default: a built-in set)")->check(CLI::ExistingFile);
  c->add_option("--temperature", o->b.temperature, "Sampling temperature (0: greedy)");
  c->add_option("--seed", o->b.seed, "Request i uses seed + i");
  c->add_option("--speculation", o->speculation, "auto | off | sd | pearl")->check(CLI::IsMember({"auto", "off", "sd", "pearl"}));
  c->add_flag("--no-ignore-eos", o->no_ignore_eos, "Let requests stop at end-of-generation (default: always max-tokens)");
  c->add_option("--timeout", o->b.timeout_s, "Per-request timeout in seconds")->check(CLI::Range(1, 1 << 20));
  c->add_option("--json", o->json, "Also write the figures as JSON to this file");
  c->add_option("--http", o->http_url,
                "Drive the OpenAI HTTP API at this base URL instead of gRPC, e.g. http://127.0.0.1:8080 "
                "(streamed POST /v1/completions; https:// trusts --tls-ca)");
  c->callback([o, &conn] {
    rpc::BenchOptions b = o->b;
    b.addr = conn.addr;
    b.security = security(conn);
    if (!o->http_url.empty()) {
      b.http_url = o->http_url;
      b.http_ca_path = conn.tls_ca;
    }
    b.speculation = speculation_of(o->speculation);
    b.ignore_eos = !o->no_ignore_eos;
    if (o->prompts_file.empty()) {
      b.prompts = rpc::builtin_prompts();
    } else {
      auto p = rpc::read_prompts_file(o->prompts_file);
      if (!p) {
        spdlog::error("{}", p.error().message);
        fail(2);
      }
      b.prompts = *p;
    }
    auto r = rpc::run_bench(b);
    if (!r) {
      spdlog::error("{}", r.error().message);
      fail(3);
    }
    rpc::print_report(*r, b, stdout);
    if (!o->json.empty()) {
      std::ofstream f(o->json);
      f << rpc::to_json(*r, b).dump(2) << "\n";
      if (!f) {
        spdlog::error("--json {}: cannot write", o->json);
        fail(1);
      }
    }
    if (r->failed > 0) fail(1);
  });
}

}  // namespace

void add_client_commands(CLI::App& app) {
  auto conn = std::make_shared<Conn>();
  auto* c = app.add_subcommand("client", "Talk to a running `tandem serve` over gRPC (bench: or its HTTP API)");
  c->require_subcommand(1);
  Conn& a = *conn;
  add_generate(*c, a);
  add_chat(*c, a);
  add_tokenize(*c, a);
  add_detokenize(*c, a);
  add_info(*c, a);
  add_health(*c, a);
  add_bench(*c, a);
  // Every subcommand takes the connection flags too, so they can go before or after its name.
  std::vector<CLI::App*> apps = c->get_subcommands({});
  apps.push_back(c);
  for (auto* sub : apps) {
    sub->add_option("--addr", a.addr, "Server address HOST:PORT")->capture_default_str();
    sub->add_flag("--tls", a.tls, "Connect over TLS, trusting the system's CA certificates (implied by --tls-ca)");
    sub->add_option("--tls-ca", a.tls_ca, "Connect over TLS, trusting this PEM CA certificate")->check(CLI::ExistingFile);
    sub->add_option("--tls-cert", a.tls_cert, "PEM client certificate, for a server that requires mutual TLS")
        ->check(CLI::ExistingFile);
    sub->add_option("--tls-key", a.tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
    sub->add_option("--api-key", a.api_key, "API key, sent as 'authorization: Bearer <key>' (default: $TANDEM_API_KEY)");
  }
  // The connection flags must outlive parsing: keep them alive with the app.
  c->callback([conn] {});
}

}  // namespace tandem::cli
