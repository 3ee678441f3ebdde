// End to end against one 2-rank PEARL server (stories260K target, llama2xs-280K draft on its own
// rank, 8 slots): the stream equals `tandem generate`, batching invariance under 32 concurrent
// clients in AR and PEARL mode, every INVALID_ARGUMENT case, the informational RPCs and
// reflection, and 1,000 short requests without leaking memory or slots.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "e2e_support.h"
#include "rpc/client_bench.h"

using namespace tandem;
using namespace tandem::e2e;

namespace {

class E2eServe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerConfig c;
    c.model = testdata_model("stories260K.gguf");
    c.draft = testdata_model("llama2xs-tinystories-280K.gguf");
    c.draft_tp = 1;
    c.speculation = "pearl";
    c.max_seqs = 8;
    server_ = new Server(c, "serve-pearl");
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_ && server_->up()) << "the shared server did not start"; }
  static rpc::Client& client() { return server_->client(); }
  static Server* server_;
};
Server* E2eServe::server_ = nullptr;

// Thirty-two different requests: prompts of different lengths, output lengths 12..135, half
// greedy and half sampled (each with its own seed), some with stop strings.
std::vector<v1::GenerateRequest> varied_requests(v1::Speculation mode) {
  const auto prompts = rpc::builtin_prompts();
  std::vector<v1::GenerateRequest> out;
  for (int i = 0; i < 32; ++i) {
    v1::GenerateRequest r = text_request(prompts[i % prompts.size()] + (i % 3 ? "" : " and then"), 12 + (i * 37) % 124, mode);
    r.set_request_id("var-" + std::to_string(i));
    if (i % 2) {
      r.set_temperature(0.9f);
      r.set_top_p(0.95f);
      r.set_seed(1000 + i);
    }
    if (i % 8 == 5) r.add_stop(".");
    r.set_ignore_eos(i % 4 == 0);
    out.push_back(r);
  }
  return out;
}

}  // namespace

TEST_F(E2eServe, GreedyStreamEqualsTandemGenerateOnTheSameLayout) {
  const std::string dir = fresh_dir("generate-vs-serve");
  const std::string ids_file = dir + "/ids";
  const int rc = run({TANDEM_MPIEXEC, "-n", "2", "--oversubscribe", "--bind-to", "none", tandem_bin(), "generate", "--model",
                      testdata_model("stories260K.gguf"), "--draft", testdata_model("llama2xs-tinystories-280K.gguf"),
                      "--draft-tp", "1", "--speculation", "pearl", "--prompt", "Once upon a time", "--max-tokens", "120",
                      "--ids-out", ids_file},
                     dir + "/generate.log", 120s);
  ASSERT_EQ(rc, 0) << read_text(dir + "/generate.log");
  const auto expected = read_ids(ids_file);
  ASSERT_FALSE(expected.empty());
  for (auto mode : {v1::SPECULATION_PEARL, v1::SPECULATION_OFF, v1::SPECULATION_SD}) {
    rpc::GenerateResult g;
    auto st = client().generate(text_request("Once upon a time", 120, mode), g, {}, 60s);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_TRUE(g.has_final);
    EXPECT_EQ(g.ids, expected) << "mode " << v1::Speculation_Name(mode);
    if (mode != v1::SPECULATION_OFF) {
      EXPECT_GT(g.final.usage().drafted_tokens(), 0) << v1::Speculation_Name(mode);
    }
  }
  // And the published golden greedy output: 200 tokens after BOS.
  v1::GenerateRequest r;
  r.mutable_ids()->add_ids(1);
  r.set_max_tokens(200);
  r.set_ignore_eos(true);
  rpc::GenerateResult g;
  ASSERT_TRUE(client().generate(r, g, {}, 60s).ok());
  EXPECT_EQ(g.ids, read_ids(testdata_model("stories260K.greedy.ids")));
  EXPECT_EQ(g.final.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(g.final.usage().completion_tokens(), 200);
  EXPECT_EQ(g.final.usage().prompt_tokens(), 1);
}

class E2eServeBatching : public E2eServe, public ::testing::WithParamInterface<v1::Speculation> {};

TEST_P(E2eServeBatching, ConcurrentClientsGetExactlyTheirTokensAlone) {
  const auto reqs = varied_requests(GetParam());
  // Alone: one request at a time, each the only sequence in the batch.
  std::vector<rpc::GenerateResult> alone(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto st = client().generate(reqs[i], alone[i], {}, 60s);
    ASSERT_TRUE(st.ok()) << i << ": " << st.error_message();
    ASSERT_TRUE(alone[i].has_final) << i;
    ASSERT_FALSE(alone[i].ids.empty()) << i;
  }
  // Together: 32 clients at once into 8 slots, so requests queue and join the batch mid-flight.
  std::vector<rpc::GenerateResult> together(reqs.size());
  std::vector<grpc::Status> status(reqs.size());
  std::atomic<int> max_active{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      v1::ServerInfo s;
      if (client().server_info(s, 5s).ok()) max_active = std::max(max_active.load(), s.active());
      std::this_thread::sleep_for(2ms);
    }
  });
  std::vector<std::thread> clients;
  for (size_t i = 0; i < reqs.size(); ++i)
    clients.emplace_back([&, i] { status[i] = client().generate(reqs[i], together[i], {}, 120s); });
  for (auto& t : clients) t.join();
  done = true;
  watcher.join();
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(status[i].ok()) << i << ": " << status[i].error_message();
    EXPECT_EQ(together[i].ids, alone[i].ids) << "request " << i << " changed when batched";
    EXPECT_EQ(together[i].text, alone[i].text) << i;
    EXPECT_EQ(together[i].final.finish_reason(), alone[i].final.finish_reason()) << i;
  }
  EXPECT_GT(max_active.load(), 1) << "the requests never overlapped: nothing was batched";
  // A slot is released at the engine step after the final message went out.
  EXPECT_TRUE(wait_for(client(), [](const v1::ServerInfo& s) {
    return s.active() == 0 && s.queued() == 0 && s.free_slots() == 8;
  })) << server_info(client()).DebugString();
}

INSTANTIATE_TEST_SUITE_P(Modes, E2eServeBatching, ::testing::Values(v1::SPECULATION_OFF, v1::SPECULATION_PEARL),
                         [](const auto& info) { return std::string(info.param == v1::SPECULATION_OFF ? "AR" : "PEARL"); });

TEST_F(E2eServe, InvalidRequestsGetInvalidArgumentWithAClearMessage) {
  struct Case {
    const char* what;
    v1::GenerateRequest req;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({"empty text", text_request("", 5), "prompt is empty"});
  {
    v1::GenerateRequest r;
    r.set_max_tokens(5);
    cases.push_back({"no prompt", r, "set either text or ids"});
  }
  {
    auto r = text_request("Once", 5);
    r.set_top_p(2);
    cases.push_back({"top_p 2", r, "top_p must be in (0, 1]"});
  }
  {
    v1::GenerateRequest r;
    r.mutable_ids()->add_ids(1);
    r.mutable_ids()->add_ids(4000);
    r.set_max_tokens(5);
    cases.push_back({"unknown token id", r, "ids[1] = 4000 is not in the vocabulary [0, 512)"});
  }
  cases.push_back({"beyond the context", text_request("Once", 5000), "beyond the context size 2048"});
  {
    auto r = text_request("Once", 5);
    r.set_temperature(-0.5f);
    cases.push_back({"negative temperature", r, "temperature"});
  }
  {
    auto r = text_request("Once", 5);
    r.add_stop_token_ids(999);
    cases.push_back({"unknown stop token", r, "stop_token_ids[0] = 999"});
  }
  {
    auto r = text_request("Once", 5);
    r.set_draft_len(1000);
    cases.push_back({"draft_len too large", r, "draft_len"});
  }
  {
    v1::GenerateRequest r;
    r.mutable_chat()->set_messages_json(R"([{"role": "user", "content": "Once"}])");
    r.set_max_tokens(5);
    cases.push_back({"chat prompt, model without a template", r, "has no chat template"});
  }
  const auto before = server_info(client()).counters().rejected_invalid();
  for (const auto& c : cases) {
    rpc::GenerateResult g;
    const grpc::Status st = client().generate(c.req, g, {}, 30s);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what << ": " << st.error_message();
    EXPECT_NE(st.error_message().find(c.message), std::string::npos) << c.what << ": " << st.error_message();
    EXPECT_TRUE(g.ids.empty()) << c.what;
  }
  v1::DetokenizeRequest d;
  d.add_ids(7);
  d.add_ids(-1);
  v1::DetokenizeResponse dr;
  const grpc::Status st = client().detokenize(d, dr);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("ids[1] = -1"), std::string::npos) << st.error_message();
  const auto s = server_info(client());
  EXPECT_EQ(s.counters().rejected_invalid() - before, static_cast<int64_t>(cases.size()) + 1);
  EXPECT_EQ(s.active(), 0);
  // The server is unaffected.
  rpc::GenerateResult g;
  ASSERT_TRUE(client().generate(text_request("Once", 8), g, {}, 30s).ok());
  EXPECT_EQ(g.ids.size(), 8u);
}

TEST_F(E2eServe, TokenizerModelAndServerInfo) {
  v1::TokenizeRequest t;
  t.set_text("Once upon a time");
  v1::TokenizeResponse tr;
  ASSERT_TRUE(client().tokenize(t, tr).ok());
  ASSERT_EQ(std::vector<int32_t>(tr.ids().begin(), tr.ids().end()), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tr.pieces(1), " Once");
  v1::DetokenizeRequest d;
  d.mutable_ids()->CopyFrom(tr.ids());
  v1::DetokenizeResponse dr;
  ASSERT_TRUE(client().detokenize(d, dr).ok());
  EXPECT_EQ(dr.text(), "Once upon a time");

  v1::ModelInfo m;
  ASSERT_TRUE(client().model_info(m).ok());
  EXPECT_EQ(m.vocab_size(), 512);
  EXPECT_EQ(m.config().dim(), 64);
  EXPECT_EQ(m.config().n_layers(), 5);
  EXPECT_EQ(m.config().n_kv_heads(), 4);
  EXPECT_EQ(m.context_size(), 2048);
  EXPECT_EQ(m.weight_type(), "f32");
  EXPECT_EQ(m.bos_id(), 1);
  EXPECT_EQ(m.eos_id(), 2);
  EXPECT_EQ(m.drafter().kind(), "model");
  EXPECT_EQ(m.drafter().draft_tp(), 1);

  const auto s = server_info(client());
  EXPECT_EQ(s.api_version(), "tandem.v1");
  EXPECT_TRUE(s.ready());
  EXPECT_FALSE(s.draining());
  EXPECT_EQ(s.layout().world_size(), 2);
  ASSERT_EQ(s.layout().ranks_size(), 2);
  EXPECT_TRUE(s.layout().ranks(0).coordinator());
  EXPECT_EQ(s.layout().ranks(1).group(), "draft");
  EXPECT_EQ(s.max_seqs(), 8);
  EXPECT_EQ(s.speculation().configured(), v1::SPECULATION_PEARL);
  EXPECT_FALSE(s.speculation().auto_reason().empty());
  EXPECT_EQ(server_->client().health(5s, "tandem.v1.Tandem"), rpc::Health::Serving);
}

TEST_F(E2eServe, ReflectionListsTheTandemService) {
  // A ServerReflectionInfo call built from the descriptors libgrpc++_reflection registers.
  // Referencing the plugin links libgrpc++_reflection into this binary, which registers them.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* req_desc = pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
  const auto* resp_desc = pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  ASSERT_TRUE(req_desc && resp_desc) << "reflection descriptors are not linked in";
  google::protobuf::DynamicMessageFactory factory(pool);
  std::unique_ptr<google::protobuf::Message> req(factory.GetPrototype(req_desc)->New());
  req->GetReflection()->SetString(req.get(), req_desc->FindFieldByName("list_services"), "*");
  std::string bytes;
  ASSERT_TRUE(req->SerializeToString(&bytes));

  auto channel = grpc::CreateChannel(server_->addr(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  grpc::CompletionQueue cq;
  void* tag;
  bool ok;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(in.Dump(&slices).ok());
  std::string resp_bytes;
  for (auto& s : slices) resp_bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<google::protobuf::Message> resp(factory.GetPrototype(resp_desc)->New());
  ASSERT_TRUE(resp->ParseFromString(resp_bytes));
  const std::string dump = resp->DebugString();
  EXPECT_NE(dump.find("tandem.v1.Tandem"), std::string::npos) << dump;
  EXPECT_NE(dump.find("grpc.health.v1.Health"), std::string::npos) << dump;
  call->WritesDone(reinterpret_cast<void*>(4));
  (void)cq.Next(&tag, &ok);
  grpc::Status st;
  call->Finish(&st, reinterpret_cast<void*>(5));
  (void)cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(E2eServe, AThousandShortRequestsLeakNeitherMemoryNorSlots) {
  const pid_t rank0 = server_->rank_pid(0);
  ASSERT_GT(rank0, 0) << "rank 0's process not found";
  const auto prompts = rpc::builtin_prompts();
  auto batch = [&](int from, int n) {
    std::atomic<int> next{from}, failures{0};
    std::vector<std::thread> ts;
    for (int c = 0; c < 4; ++c)
      ts.emplace_back([&] {
        for (int i; (i = next++) < from + n;) {
          auto r = text_request(prompts[i % prompts.size()], 4 + i % 5, i % 2 ? v1::SPECULATION_PEARL : v1::SPECULATION_OFF);
          if (i % 3 == 0) {
            r.set_temperature(0.8f);
            r.set_seed(i);
          }
          rpc::GenerateResult g;
          if (!client().generate(r, g, {}, 30s).ok() || !g.has_final) ++failures;
        }
      });
    for (auto& t : ts) t.join();
    return failures.load();
  };
  ASSERT_EQ(batch(0, 100), 0);  // warm: allocator pools, gRPC buffers, thread stacks
  const long before = rss_kib(rank0);
  const auto s0 = server_info(client());
  ASSERT_EQ(batch(100, 1000), 0);
  // Slots are released at the engine step after their final message: wait for that, not longer.
  EXPECT_TRUE(wait_for(client(), [](const v1::ServerInfo& s) { return s.active() == 0 && s.streams() == 0; }));
  const long after = rss_kib(rank0);
  const auto s1 = server_info(client());
  std::printf("rank 0 VmRSS: %ld KiB after 100 warm-up requests, %ld KiB after 1,000 more (%+ld KiB)\n", before, after,
              after - before);
  ASSERT_GT(before, 0);
  // Bound: 8 MiB for 1,000 requests, i.e. < 8 KiB per request — a per-request leak of a stream,
  // a sequence or its token vectors would exceed it; allocator noise stays well below.
  EXPECT_LT(after - before, 8 * 1024) << "rank 0 RSS grew from " << before << " KiB to " << after << " KiB";
  RecordProperty("rss_growth_kib", std::to_string(after - before));
  EXPECT_EQ(s1.counters().admitted() - s0.counters().admitted(), 1000);
  EXPECT_EQ(s1.counters().completed() - s0.counters().completed(), 1000);
  EXPECT_EQ(s1.active(), 0);
  EXPECT_EQ(s1.queued(), 0);
  EXPECT_EQ(s1.free_slots(), 8);
  EXPECT_EQ(s1.streams(), 0);
}
