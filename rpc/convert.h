// tandem.v1 messages <-> engine types. Pure functions (no gRPC server, no MPI), so every mapping
// and every validation message is unit-tested without starting a server.
#pragma once
#include <grpcpp/support/status.h>

#include "decode/engine.h"
#include "dist/cluster.h"
#include "rpc/tandem.pb.h"
#include "shard/tokenizer/chat_template.h"
#include "shard/tokenizer/tokenizer.h"

namespace tandem::rpc {

inline constexpr int kDefaultMaxTokens = 128;
inline constexpr int kMaxTopLogprobs = 20;

// Validates and converts a GenerateRequest: tokenizes a text prompt (or renders a chat prompt
// with `chat`'s template), applies the documented defaults of absent fields, and checks every
// parameter against the tokenizer and the context size `ctx`. Errors have code InvalidArgument
// and name the field and the value.
Result<GenerationRequest> to_engine_request(const v1::GenerateRequest& in, const Tokenizer& tok, int ctx,
                                            const ChatSetup& chat = {});
// A ChatPrompt -> the prompt text its template renders (errors name the field or the template's
// line and column; a server without a template says why it has none).
Result<std::string> render_chat_prompt(const v1::ChatPrompt& in, const ChatSetup& chat);

SpecMode from_proto(v1::Speculation s);
v1::Speculation to_proto(SpecMode m);
v1::FinishReason to_proto(FinishReason r);
FinishReason from_proto(v1::FinishReason r);

void to_proto(const Usage& u, v1::Usage& out);
// One engine event -> one stream message (`final` set on the last event).
void to_proto(const GenerationEvent& e, v1::GenerateResponse& out);

// The engine's live counters and load (ServerInfo fields other than layout/version/uptime).
void to_proto(const EngineInfo& info, v1::ServerInfo& out);
// The job's layout (layers per stage for a model of `n_layers`) and what every world rank does.
void to_proto(const Layout& layout, int n_layers, v1::Layout& out);
// The served model, tokenizer, context size and drafter.
void to_proto(const Cluster& cluster, const Tokenizer& tok, v1::ModelInfo& out);

// ErrorCode -> gRPC status code (InvalidArgument, ResourceExhausted, Unavailable, else Internal).
grpc::Status to_grpc_status(const Error& e);

}  // namespace tandem::rpc
