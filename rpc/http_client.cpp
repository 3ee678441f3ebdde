#include "rpc/http_client.h"

#include <httplib.h>

#include <chrono>

namespace tandem::rpc {

std::vector<std::string> take_sse_events(std::string& buffer) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t end = buffer.find("\n\n", start);
    if (end == std::string::npos) break;
    std::string data;
    bool has_data = false;
    size_t pos = start;
    while (pos < end) {
      size_t eol = buffer.find('\n', pos);
      if (eol == std::string::npos || eol > end) eol = end;
      std::string_view line(buffer.data() + pos, eol - pos);
      if (line.rfind("data:", 0) == 0) {
        line.remove_prefix(5);
        if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (has_data) data += '\n';
        data += line;
        has_data = true;
      }
      pos = eol + 1;
    }
    if (has_data) out.push_back(std::move(data));
    start = end + 2;
  }
  buffer.erase(0, start);
  return out;
}

struct HttpClient::Impl {
  std::unique_ptr<httplib::Client> cli;
  std::string api_key;
};

HttpClient::HttpClient(const HttpEndpoint& e) : impl_(std::make_unique<Impl>()) {
  impl_->cli = std::make_unique<httplib::Client>(e.url);
  if (!e.ca_path.empty()) impl_->cli->set_ca_cert_path(e.ca_path.c_str());
  impl_->cli->enable_server_certificate_verification(true);
  impl_->cli->set_read_timeout(std::chrono::seconds(300));
  impl_->cli->set_keep_alive(true);
  impl_->cli->set_tcp_nodelay(true);  // headers and body go out as separate writes: no Nagle wait for the ACK
  impl_->api_key = e.api_key;
}

HttpClient::~HttpClient() = default;

Status HttpClient::stream(const std::string& path, nlohmann::json body, GenerateResult& out, std::string* code) {
  using Clock = std::chrono::steady_clock;
  out = GenerateResult{};
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  body["return_token_ids"] = true;
  std::string buffer, error_body;
  bool done = false;
  std::string stream_error;
  const auto t0 = Clock::now();
  int status = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  if (!impl_->api_key.empty()) req.headers.emplace("Authorization", "Bearer " + impl_->api_key);
  req.headers.emplace("Content-Type", "application/json");
  req.body = body.dump();
  req.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (status != 200) {
      error_body.append(data, n);
      return true;
    }
    buffer.append(data, n);
    for (auto& ev : take_sse_events(buffer)) {
      if (ev == "[DONE]") {
        done = true;
        continue;
      }
      nlohmann::json j = nlohmann::json::parse(ev, nullptr, false);
      if (j.is_discarded()) {
        stream_error = "a server-sent event is not JSON: " + ev.substr(0, 200);
        return false;
      }
      if (j.contains("error")) {
        stream_error = j["error"].value("message", ev);
        continue;
      }
      const double t = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (j.contains("usage") && j["usage"].is_object()) {
        auto* u = out.final.mutable_usage();
        u->set_prompt_tokens(j["usage"].value("prompt_tokens", 0));
        u->set_completion_tokens(j["usage"].value("completion_tokens", 0));
        if (j["usage"].contains("speculation")) {
          u->set_drafted_tokens(j["usage"]["speculation"].value("drafted_tokens", 0));
          u->set_accepted_tokens(j["usage"]["speculation"].value("accepted_tokens", 0));
        }
        out.has_final = true;
      }
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const auto& ch = j["choices"][0];
      if (ch.contains("text") && ch["text"].is_string()) out.text += ch["text"].get<std::string>();
      if (ch.contains("delta") && ch["delta"].contains("content") && ch["delta"]["content"].is_string())
        out.text += ch["delta"]["content"].get<std::string>();
      if (ch.contains("token_ids") && !ch["token_ids"].empty()) {
        const auto ids = ch["token_ids"].get<std::vector<int32_t>>();
        if (out.arrivals.empty()) out.ttft_ms = t;
        out.arrivals.emplace_back(t, static_cast<int>(ids.size()));
        out.ids.insert(out.ids.end(), ids.begin(), ids.end());
      }
      if (ch.contains("finish_reason") && ch["finish_reason"].is_string())
        out.final.set_finish_reason(ch["finish_reason"] == "length" ? v1::FINISH_REASON_LENGTH : v1::FINISH_REASON_STOP);
    }
    return true;
  };
  auto res = impl_->cli->send(req);
  out.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!res) {
    if (code) *code = "connection";
    return make_error("HTTP {}: {}", path, httplib::to_string(res.error()));
  }
  if (status != 200) {
    if (code) *code = fmt::format("HTTP {}", status);
    nlohmann::json j = nlohmann::json::parse(error_body, nullptr, false);
    const std::string msg = !j.is_discarded() && j.contains("error") ? j["error"].value("message", error_body) : error_body;
    return make_error(status == 429 ? ErrorCode::ResourceExhausted : status == 503 ? ErrorCode::Unavailable : ErrorCode::InvalidArgument,
                      "HTTP {}: {}", status, msg);
  }
  if (!stream_error.empty()) {
    if (code) *code = "stream error";
    return make_error("{}: {}", path, stream_error);
  }
  if (!done) {
    if (code) *code = "truncated";
    return make_error("{}: the stream ended without data: [DONE]", path);
  }
  return ok_status();
}

Result<int> HttpClient::get(const std::string& path, std::string& out) {
  httplib::Headers headers;
  if (!impl_->api_key.empty()) headers.emplace("Authorization", "Bearer " + impl_->api_key);
  auto res = impl_->cli->Get(path.c_str(), headers);
  if (!res) return make_error("HTTP GET {}: {}", path, httplib::to_string(res.error()));
  out = res->body;
  return res->status;
}

}  // namespace tandem::rpc
